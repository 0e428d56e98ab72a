"""The embedded default benchmark: real data shipped with scikit-learn, nothing to download.

* **ID**: the handwritten digits 0-7 of ``sklearn.datasets.load_digits`` (UCI optical
  digits: 8 x 8 images, 0..16 ink counts), split 50/50 into a training half (the model's
  training data, also the ID training subset of KNN and ReAct) and a test half.
* **near-OOD** ``digits-8-9``: the digits 8 and 9 of the same dataset: same writers, same
  scanner, unseen classes (semantic shift).
* **far-OOD** ``photo-china`` and ``photo-flower``: 8 x 8 patches of the two photographs
  scikit-learn ships (``load_sample_images``: a Chinese temple, a flower), made the way the
  digits were made: a random 32 x 32 grey-level crop averaged over 4 x 4 blocks, scaled to
  the digits' 0..16 range.

Every image is x / 16, normalised with the mean and std of the training half.

The model, :class:`DigitsResNet`, is a ResNet-8 (the CIFAR ResNet with one BasicBlock per
stage, BatchNorm, option-A shortcuts) with a one-channel stem. It trains deterministically,
on one CPU thread, in 5-25 s and is cached under ``~/.cache/gaia-openood`` (or
``$GAIA_OPENOOD_CACHE``, or ``cache_dir``), keyed by a hash of the training recipe and data.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import tempfile
import time
import warnings
from typing import Dict, Iterator, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models.cifar_resnet import CifarResNet
from .benchmark import Benchmark, ImageSet

__all__ = [
    "DigitsResNet",
    "Recipe",
    "RECIPE",
    "digits_benchmark",
    "digits_model",
    "train_digits_model",
    "cache_dir",
    "CACHE_ENV",
]

CACHE_ENV = "GAIA_OPENOOD_CACHE"


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything the default benchmark and its model depend on (hashed into the cache key)."""

    id_classes: Tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7)
    near_classes: Tuple[int, ...] = (8, 9)
    split_seed: int = 0
    patches_per_photo: int = 400
    patch_seed: int = 1
    crop: int = 32
    seed: int = 0
    epochs: int = 30
    batch_size: int = 32
    max_lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    max_shift: int = 1
    version: int = 1  # bump when the code below changes what is trained

    def key(self) -> str:
        """A short hash of the recipe, the scikit-learn data and the torch version."""
        digest = hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode())
        digits, _ = _load_digits()
        digest.update(digits.tobytes())
        digest.update(torch.__version__.encode())
        return digest.hexdigest()[:16]


RECIPE = Recipe()


class DigitsResNet(CifarResNet):
    """ResNet-8 for 1 x 8 x 8 digits: stem, three stages of one BasicBlock (16/32/64 channels,
    strides 1/2/2, so 8 x 8, 4 x 4, 2 x 2 maps), global average pooling, linear head."""

    def __init__(self, num_classes: int = 8) -> None:
        super().__init__(blocks=1, num_classes=num_classes)
        self.conv1 = nn.Conv2d(1, 16, 3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(self.conv1.weight)


def _load_digits() -> Tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.images.astype(np.float32), data.target.astype(np.int64)


def _photo_patches(recipe: Recipe) -> Dict[str, np.ndarray]:
    """(N, 8, 8) float32 0..16 patches of each of scikit-learn's sample photographs."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images()
    rng = np.random.default_rng(recipe.patch_seed)
    block = recipe.crop // 8
    out = {}
    for filename, image in zip(photos.filenames, photos.images):
        name = "photo-" + os.path.splitext(os.path.basename(filename))[0]
        grey = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        tops = rng.integers(0, grey.shape[0] - recipe.crop + 1, size=recipe.patches_per_photo)
        lefts = rng.integers(0, grey.shape[1] - recipe.crop + 1, size=recipe.patches_per_photo)
        crops = np.stack([grey[t : t + recipe.crop, l : l + recipe.crop] for t, l in zip(tops, lefts)])
        blocks = crops.reshape(-1, 8, block, 8, block).mean(axis=(2, 4))
        out[name] = blocks / 255.0 * 16.0
    return out


def digits_benchmark(recipe: Recipe = RECIPE) -> Benchmark:
    """The default benchmark (see the module docstring); deterministic, built in well under a second."""
    images, labels = _load_digits()
    id_rows = np.flatnonzero(np.isin(labels, recipe.id_classes))
    rng = np.random.default_rng(recipe.split_seed)
    shuffled = rng.permutation(id_rows)
    half = len(shuffled) // 2
    train_rows, test_rows = np.sort(shuffled[:half]), np.sort(shuffled[half:])
    near_rows = np.flatnonzero(np.isin(labels, recipe.near_classes))

    def as_input(x: np.ndarray) -> np.ndarray:
        return (x / 16.0).astype(np.float32)[:, None]

    train_x = as_input(images[train_rows])
    mean, std = float(train_x.mean()), float(train_x.std())
    id_names = [str(c) for c in recipe.id_classes]
    label_of = {c: i for i, c in enumerate(recipe.id_classes)}
    remap = np.vectorize(label_of.__getitem__, otypes=[np.int64])
    near_name = "digits-" + "-".join(str(c) for c in recipe.near_classes)
    ood = [ImageSet(near_name, "near", as_input(images[near_rows]), source="sklearn load_digits")]
    description = {
        "id": f"sklearn digits {id_names[0]}-{id_names[-1]}, test half (the training half trained the model)",
        near_name: f"sklearn digits {' and '.join(map(str, recipe.near_classes))}: unseen classes, same writers and scanner",
    }
    for name, patches in _photo_patches(recipe).items():
        ood.append(ImageSet(name, "far", as_input(patches), source="sklearn load_sample_images"))
        description[name] = f"8x8 block means of random 32x32 grey crops of sklearn's sample photo {name[6:]}.jpg"
    return Benchmark(
        name="digits",
        id_test=ImageSet("id", "id", as_input(images[test_rows]), remap(labels[test_rows]), "sklearn load_digits"),
        id_train=ImageSet("train", "train", train_x, remap(labels[train_rows]), "sklearn load_digits"),
        ood=ood,
        mean=(mean,),
        std=(std,),
        classes=id_names,
        description=description,
    )


def cache_dir(override: Optional[str] = None) -> str:
    """``override``, else ``$GAIA_OPENOOD_CACHE``, else ``$XDG_CACHE_HOME/gaia-openood`` (~/.cache)."""
    if override:
        return os.path.abspath(os.path.expanduser(override))
    if os.environ.get(CACHE_ENV):
        return os.path.abspath(os.path.expanduser(os.environ[CACHE_ENV]))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "gaia-openood")


@contextlib.contextmanager
def _deterministic(seed: int) -> Iterator[None]:
    """Seeded, deterministic kernels on one CPU thread for the block; the caller's settings afterwards.

    One thread makes the result independent of the machine's core count, and is also the
    fastest choice for 8 x 8 images: more threads only add overhead, and slow down by an
    order of magnitude when other processes load the CPU.
    """
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    threads = torch.get_num_threads()
    rng_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.random.set_rng_state(rng_state)


def train_digits_model(
    benchmark: Benchmark, recipe: Recipe = RECIPE, *, epochs: Optional[int] = None, progress: bool = True
) -> DigitsResNet:
    """Train :class:`DigitsResNet` on the benchmark's ID training half, on the CPU, deterministically.

    SGD with Nesterov momentum, one-cycle learning rate, cross-entropy, random shifts of up to
    ``recipe.max_shift`` pixels (one per batch). ``epochs`` overrides the recipe (tests).
    """
    from tqdm.auto import tqdm

    train = benchmark.id_train
    if train is None or train.y is None:
        raise ValueError("the digits benchmark has no training half")
    epochs = recipe.epochs if epochs is None else epochs
    with _deterministic(recipe.seed):
        generator = torch.Generator().manual_seed(recipe.seed)
        model = DigitsResNet(num_classes=benchmark.num_classes)
        x = benchmark.preprocess(train.x)
        y = torch.from_numpy(train.y)
        steps_per_epoch = -(-len(y) // recipe.batch_size)
        optimizer = torch.optim.SGD(
            model.parameters(), lr=recipe.max_lr, momentum=recipe.momentum, nesterov=True,
            weight_decay=recipe.weight_decay,
        )
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.max_lr, total_steps=epochs * steps_per_epoch)
        shift = recipe.max_shift
        size = x.shape[-1]
        model.train()
        for _ in tqdm(range(epochs), desc="training the default model", unit="epoch", disable=not progress, leave=False):
            order = torch.randperm(len(y), generator=generator)
            for start in range(0, len(y), recipe.batch_size):
                rows = order[start : start + recipe.batch_size]
                batch = F.pad(x[rows], (shift,) * 4, value=float(x.min()))
                dy, dx = torch.randint(0, 2 * shift + 1, (2,), generator=generator).tolist()
                batch = batch[:, :, dy : dy + size, dx : dx + size]
                loss = F.cross_entropy(model(batch), y[rows])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
    return model.eval()


def digits_model(
    benchmark: Optional[Benchmark] = None,
    recipe: Recipe = RECIPE,
    *,
    cache: Optional[str] = None,
    progress: bool = True,
) -> Tuple[DigitsResNet, Dict[str, object]]:
    """The default model: loaded from the cache, or trained (5-25 s on one CPU thread) and cached.

    Returns:
        ``(model, info)``: the model in eval mode on the CPU; ``info`` has ``path`` (the cache
        file), ``trained`` (True when trained now), ``train_seconds`` and ``key``.
    """
    benchmark = benchmark if benchmark is not None else digits_benchmark(recipe)
    key = recipe.key()
    path = os.path.join(cache_dir(cache), f"digits-resnet8-{key}.pt")
    model = DigitsResNet(num_classes=benchmark.num_classes)
    if os.path.isfile(path):
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(stored["state_dict"])
            return model.eval(), {"path": path, "trained": False, "train_seconds": stored.get("train_seconds"), "key": key}
        except Exception as error:  # a damaged or foreign file: retrain and replace it
            warnings.warn(f"ignoring unreadable cache file {path} ({error}); retraining")
    start = time.perf_counter()
    model = train_digits_model(benchmark, recipe, progress=progress)
    seconds = time.perf_counter() - start
    stored = {"state_dict": model.state_dict(), "recipe": dataclasses.asdict(recipe), "train_seconds": seconds}
    try:
        _save_atomically(stored, path)
    except OSError as error:
        warnings.warn(f"could not cache the default model in {path} ({error}); set --cache-dir or ${CACHE_ENV}")
        path = ""
    return model, {"path": path, "trained": True, "train_seconds": seconds, "key": key}


def _save_atomically(obj: object, path: str) -> None:
    """``torch.save`` to a temporary file, then rename: a concurrent run never reads half a file."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    os.close(handle)
    try:
        torch.save(obj, temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
