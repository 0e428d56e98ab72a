"""Benchmarks for ``gaia-openood eval``: the npz folder format, its validation and preprocessing.

A benchmark is a folder of ``.npz`` files (``numpy.savez``)::

    my-benchmark/
      benchmark.json          optional manifest, see below
      id_test.npz             x: ID test images, y: their labels 0..C-1     (required)
      id_train.npz            x, y: a subset of the ID training data        (optional)
      ood/near/<name>.npz     x: one near-OOD set per file (semantic shift)
      ood/far/<name>.npz      x: one far-OOD set per file

Images (key ``x``) are either ``uint8`` of shape (N, H, W, C) or (N, H, W), channels last as
images are usually stored, and are divided by 255; or floating point of shape (N, C, H, W),
taken as they are. Then, when the manifest gives ``mean`` and ``std``, each channel c becomes
``(x[c] - mean[c]) / std[c]``. Every set must end up with the same (C, H, W). Labels (key
``y``) are integers in ``0 .. num_classes - 1``; OOD files need no ``y``. The ID training
subset is used only by methods that fit on ID data (KNN, ReAct) and is skipped by the others;
without it those methods are left out with a note.

``benchmark.json`` (every key optional; paths relative to the folder, or to ``data_root``)::

    {
      "name": "cifar10-mini",
      "id_test": "test.npz",
      "id_train": "train5k.npz",                 (null: no training subset)
      "near": {"tin": "ood/tin.npz"},            (default: every ood/near/*.npz)
      "far": {"dtd10": "ood/dtd10.npz"},         (default: every ood/far/*.npz)
      "mean": [0.485, 0.456, 0.406],
      "std": [0.229, 0.224, 0.225],
      "classes": ["airplane", "automobile", ...],
      "description": {"tin": "Tiny ImageNet validation images"}
    }

The manifest can also live outside the data (``load_benchmark("cifar10-mini.json",
data_root="/data/cifar10-mini")``), which is how a folder with another layout is used
without copying it.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

__all__ = ["ImageSet", "Benchmark", "BenchmarkError", "load_benchmark", "MANIFEST", "MANIFEST_KEYS", "GROUPS"]

MANIFEST = "benchmark.json"
MANIFEST_KEYS = ("name", "id_test", "id_train", "near", "far", "mean", "std", "classes", "description")
GROUPS = ("near", "far")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


class BenchmarkError(ValueError):
    """A benchmark folder or manifest is missing or malformed; the message says how to fix it."""


@dataclasses.dataclass
class ImageSet:
    """One set of images of a benchmark.

    Attributes:
        name: the set's name (file stem, or its key in the manifest).
        group: ``"id"``, ``"train"``, ``"near"`` or ``"far"``.
        x: the stored images, uint8 (N, H, W, C) or floating (N, C, H, W).
        y: (N,) int64 labels, or None (OOD sets).
        source: where the images came from (a path, or a description).
    """

    name: str
    group: str
    x: np.ndarray
    y: Optional[np.ndarray] = None
    source: str = ""

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def channels_last(self) -> bool:
        return self.x.dtype == np.uint8

    @property
    def image_shape(self) -> Tuple[int, int, int]:
        """(C, H, W) of the images after conversion."""
        if self.channels_last:
            height, width, channels = self.x.shape[1:]
            return int(channels), int(height), int(width)
        return tuple(int(s) for s in self.x.shape[1:])  # type: ignore[return-value]

    def subset(self, indices: np.ndarray) -> "ImageSet":
        """The same set restricted to ``indices`` (in the given order)."""
        return dataclasses.replace(self, x=self.x[indices], y=None if self.y is None else self.y[indices])


@dataclasses.dataclass
class Benchmark:
    """An ID test set, OOD sets grouped near/far, an optional ID training subset, preprocessing.

    Attributes:
        name: the benchmark's name (used for output folders and titles).
        id_test: the ID test set (with labels).
        ood: OOD sets, near-OOD first, each with ``group`` "near" or "far".
        id_train: the ID training subset for methods that fit, or None.
        mean, std: per-channel normalisation applied after the uint8 -> [0, 1] conversion.
        classes: class names, if known.
        description: free text per set name (what the set is), shown in reports.
    """

    name: str
    id_test: ImageSet
    ood: List[ImageSet]
    id_train: Optional[ImageSet] = None
    mean: Optional[Tuple[float, ...]] = None
    std: Optional[Tuple[float, ...]] = None
    classes: Optional[List[str]] = None
    description: Dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    @property
    def image_shape(self) -> Tuple[int, int, int]:
        """(C, H, W) of every set."""
        return self.id_test.image_shape

    @property
    def num_classes(self) -> int:
        """Number of ID classes: ``len(classes)`` if given, else the largest label + 1."""
        if self.classes:
            return len(self.classes)
        labels = [self.id_test.y] + ([self.id_train.y] if self.id_train is not None else [])
        return int(max(int(y.max()) for y in labels)) + 1

    def sets(self) -> List[ImageSet]:
        """The ID test set followed by the OOD sets (the sets that are scored)."""
        return [self.id_test] + list(self.ood)

    def group_of(self, name: str) -> str:
        for image_set in self.ood:
            if image_set.name == name:
                return image_set.group
        raise KeyError(name)

    def validate(self) -> None:
        """Raise :class:`BenchmarkError` naming the first inconsistency found."""
        if self.id_test.y is None:
            raise BenchmarkError(f"{self.id_test.source}: the ID test set needs labels (key 'y').")
        if not self.ood:
            raise BenchmarkError(
                f"benchmark '{self.name}' has no OOD set: add files under ood/near/ or ood/far/, or "
                f"list them under 'near' / 'far' in {MANIFEST}."
            )
        names = [s.name for s in self.ood]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise BenchmarkError(f"benchmark '{self.name}': OOD set names must be unique; repeated: {duplicates}")
        for image_set in self.ood:
            if image_set.group not in GROUPS:
                raise BenchmarkError(f"OOD set '{image_set.name}': group must be one of {GROUPS}, got {image_set.group!r}")
            if image_set.name in ("id", "train"):
                raise BenchmarkError(
                    f"OOD set name {image_set.name!r} is reserved for the ID sets; rename the OOD set."
                )
            if not _NAME.match(image_set.name):
                raise BenchmarkError(
                    f"OOD set name {image_set.name!r} may only use letters, digits and _ . + - "
                    "(it names output files); rename it."
                )
        shape = self.image_shape
        for image_set in self.sets() + ([self.id_train] if self.id_train is not None else []):
            if image_set.image_shape != shape:
                raise BenchmarkError(
                    f"{image_set.source}: images are {image_set.image_shape} (C, H, W) after conversion but "
                    f"the ID test images are {shape}; every set must have the same size and channels."
                )
        for label, values in (("mean", self.mean), ("std", self.std)):
            if values is not None and len(values) != shape[0]:
                raise BenchmarkError(
                    f"benchmark '{self.name}': '{label}' has {len(values)} values but the images have "
                    f"{shape[0]} channel(s)."
                )
        if self.std is not None and any(s <= 0 for s in self.std):
            raise BenchmarkError(f"benchmark '{self.name}': every 'std' value must be positive, got {list(self.std)}")
        if (self.mean is None) != (self.std is None):
            raise BenchmarkError(f"benchmark '{self.name}': give both 'mean' and 'std', or neither.")
        if self.classes is not None:
            for image_set in [self.id_test] + ([self.id_train] if self.id_train is not None else []):
                top = int(image_set.y.max())
                if top >= len(self.classes):
                    raise BenchmarkError(
                        f"{image_set.source}: label {top} but only {len(self.classes)} classes are named."
                    )

    def preprocess(self, x: np.ndarray, device: Union[str, torch.device] = "cpu") -> Tensor:
        """Stored images -> float32 (B, C, H, W) model input on ``device``."""
        tensor = torch.from_numpy(np.ascontiguousarray(x)).to(device)
        if tensor.dtype == torch.uint8:
            if tensor.dim() == 3:
                tensor = tensor.unsqueeze(-1)
            tensor = tensor.permute(0, 3, 1, 2).float().div_(255.0)
        else:
            tensor = tensor.float()
        if self.mean is not None and self.std is not None:
            mean = torch.tensor(self.mean, dtype=torch.float32, device=tensor.device).view(1, -1, 1, 1)
            std = torch.tensor(self.std, dtype=torch.float32, device=tensor.device).view(1, -1, 1, 1)
            tensor = (tensor - mean) / std
        return tensor.contiguous()

    def batches(
        self, image_set: ImageSet, batch_size: int, device: Union[str, torch.device] = "cpu"
    ) -> Iterator[Tensor]:
        """Preprocessed (B, C, H, W) batches of ``image_set`` in order."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        for start in range(0, len(image_set), batch_size):
            yield self.preprocess(image_set.x[start : start + batch_size], device)

    def subsample(self, max_samples: Optional[int], seed: int = 0) -> "Benchmark":
        """A copy whose ID test and OOD sets hold at most ``max_samples`` images each.

        The kept images are a uniformly random subset (``numpy.random.default_rng(seed)``),
        in their original order; the ID training subset is kept whole.
        """
        if max_samples is None:
            return self
        if max_samples < 1:
            raise ValueError(f"max_samples must be at least 1, got {max_samples}")

        def cut(image_set: ImageSet) -> ImageSet:
            if len(image_set) <= max_samples:
                return image_set
            rng = np.random.default_rng(seed)
            keep = np.sort(rng.choice(len(image_set), size=max_samples, replace=False))
            return image_set.subset(keep)

        return dataclasses.replace(self, id_test=cut(self.id_test), ood=[cut(s) for s in self.ood])


def _fail(path: str, message: str) -> BenchmarkError:
    return BenchmarkError(f"{path}: {message}")


def _check_images(x: np.ndarray, path: str) -> np.ndarray:
    if x.dtype == np.uint8:
        if x.ndim == 3:
            x = x[..., None]
        if x.ndim != 4:
            raise _fail(path, f"uint8 images must be (N, H, W, C) or (N, H, W); got shape {x.shape}.")
        if x.shape[-1] not in (1, 3, 4) and x.shape[1] in (1, 3):
            raise _fail(
                path,
                f"uint8 images of shape {x.shape} look channels-first; store uint8 images channels-last "
                "(N, H, W, C), e.g. x.transpose(0, 2, 3, 1), or as float (N, C, H, W).",
            )
    elif np.issubdtype(x.dtype, np.floating):
        if x.ndim != 4:
            raise _fail(path, f"float images must be (N, C, H, W); got shape {x.shape}.")
        if not np.isfinite(x).all():
            raise _fail(path, "images contain NaN or infinite values.")
    else:
        raise _fail(
            path,
            f"images must be uint8 (N, H, W, C) or float (N, C, H, W); got dtype {x.dtype}. "
            "Convert them, e.g. x.astype(np.uint8) for 0..255 pixels.",
        )
    if x.shape[0] == 0:
        raise _fail(path, "the set holds no images.")
    return x


def _check_labels(y: np.ndarray, n: int, path: str) -> np.ndarray:
    if y.ndim != 1 or y.shape[0] != n:
        raise _fail(path, f"labels 'y' must have shape ({n},) to match the images; got {y.shape}.")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise _fail(path, f"labels 'y' must be integers; got dtype {y.dtype}.")
    if y.min() < 0:
        raise _fail(path, f"labels must be class indices >= 0; found {int(y.min())}.")
    return y.astype(np.int64)


def load_image_set(path: str, name: str, group: str, *, labels: bool) -> ImageSet:
    """Read and validate one npz file; ``labels`` says whether ``y`` is required."""
    if not os.path.isfile(path):
        raise BenchmarkError(f"{path}: file not found.")
    arrays = _read_npz(path, ("x", "y") if labels else ("x",))
    if "x" not in arrays:
        raise _fail(path, f"no images: the file needs an array named 'x' (it has {arrays['.files']}).")
    x = _check_images(arrays["x"], path)
    y = None
    if labels:
        if "y" not in arrays:
            raise _fail(path, f"no labels: ID sets need an integer array named 'y' (the file has {arrays['.files']}).")
        y = _check_labels(arrays["y"], x.shape[0], path)
    return ImageSet(name=name, group=group, x=x, y=y, source=path)


def _read_npz(path: str, keys: Sequence[str]) -> Dict[str, object]:
    """The arrays ``keys`` of an npz file (those present), and its key list under '.files'."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays: Dict[str, object] = {key: data[key] for key in keys if key in data.files}
            arrays[".files"] = sorted(data.files)
    except Exception as error:  # zip, format and pickle errors come in many types
        raise _fail(
            path,
            f"not a readable .npz file of plain arrays ({error}). Write it with "
            "numpy.savez(path, x=images, y=labels), without Python objects.",
        ) from None
    return arrays


def _read_manifest(path: str) -> Dict[str, object]:
    try:
        with open(path) as handle:
            manifest = json.load(handle)
    except json.JSONDecodeError as error:
        raise _fail(path, f"not valid JSON ({error}).") from None
    if not isinstance(manifest, dict):
        raise _fail(path, f"the manifest must be a JSON object with keys among {list(MANIFEST_KEYS)}.")
    unknown = sorted(set(manifest) - set(MANIFEST_KEYS))
    if unknown:
        raise _fail(path, f"unknown key(s) {unknown}; allowed keys: {list(MANIFEST_KEYS)}.")
    return manifest


def _ood_entries(manifest: Mapping[str, object], group: str, root: str, where: str) -> List[Tuple[str, str]]:
    if group in manifest:
        listed = manifest[group]
        if not isinstance(listed, dict) or not all(isinstance(v, str) for v in listed.values()):
            raise _fail(where, f"'{group}' must map set names to npz paths, e.g. {{\"tin\": \"ood/tin.npz\"}}.")
        return [(name, os.path.join(root, rel)) for name, rel in listed.items()]
    folder = os.path.join(root, "ood", group)
    if not os.path.isdir(folder):
        return []
    files = sorted(f for f in os.listdir(folder) if f.endswith(".npz"))
    return [(os.path.splitext(f)[0], os.path.join(folder, f)) for f in files]


def _floats(value: object, key: str, where: str) -> Optional[Tuple[float, ...]]:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (float(value),)
    if isinstance(value, list) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return tuple(float(v) for v in value)
    raise _fail(where, f"'{key}' must be a number or a list of numbers (one per channel), got {value!r}.")


def load_benchmark(path: Union[str, os.PathLike], data_root: Optional[Union[str, os.PathLike]] = None) -> Benchmark:
    """Load and validate a benchmark.

    Args:
        path: a benchmark folder (with or without ``benchmark.json``) or a manifest ``.json``.
        data_root: folder the manifest's relative paths are resolved against (default: the
            folder holding the manifest, or ``path`` itself).

    Raises:
        BenchmarkError: missing folder or files, malformed manifest, arrays of the wrong kind
            or shape, inconsistent sets; the message names the file and the fix.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        folder, manifest_path = path, os.path.join(path, MANIFEST)
        manifest = _read_manifest(manifest_path) if os.path.isfile(manifest_path) else {}
    elif os.path.isfile(path):
        if not path.endswith(".json"):
            raise BenchmarkError(f"{path}: expected a benchmark folder or a {MANIFEST}-style .json manifest.")
        folder, manifest_path = os.path.dirname(os.path.abspath(path)), path
        manifest = _read_manifest(path)
    else:
        raise BenchmarkError(
            f"benchmark not found: {path}. Give a folder holding id_test.npz and ood/near/*.npz, "
            "ood/far/*.npz (see `gaia-openood eval --help`), or a manifest .json."
        )
    root = os.fspath(data_root) if data_root is not None else folder
    if not os.path.isdir(root):
        raise BenchmarkError(f"data root not found: {root}")
    where = manifest_path if manifest else root

    id_test_rel = manifest.get("id_test", "id_test.npz")
    if not isinstance(id_test_rel, str):
        raise _fail(where, f"'id_test' must be a path, got {id_test_rel!r}.")
    id_test_path = os.path.join(root, id_test_rel)
    if not os.path.isfile(id_test_path):
        raise BenchmarkError(
            f"{id_test_path}: the ID test set is missing. A benchmark folder needs id_test.npz "
            f"(or an 'id_test' entry in {MANIFEST}) with images 'x' and labels 'y'."
        )
    id_test = load_image_set(id_test_path, "id", "id", labels=True)

    id_train = None
    train_rel = manifest.get("id_train", "id_train.npz")
    if train_rel is not None:
        if not isinstance(train_rel, str):
            raise _fail(where, f"'id_train' must be a path or null, got {train_rel!r}.")
        train_path = os.path.join(root, train_rel)
        if os.path.isfile(train_path):
            id_train = load_image_set(train_path, "train", "train", labels=True)
        elif "id_train" in manifest:
            raise BenchmarkError(f"{train_path}: the ID training subset named in {manifest_path} is missing.")

    ood: List[ImageSet] = []
    for group in GROUPS:
        for name, file in _ood_entries(manifest, group, root, where):
            ood.append(load_image_set(file, name, group, labels=False))

    classes = manifest.get("classes")
    if classes is None:
        stored = _read_npz(id_test_path, ("classes",)).get("classes")
        if isinstance(stored, np.ndarray) and stored.ndim == 1 and stored.dtype.kind in "US":
            classes = [c.decode() if isinstance(c, bytes) else str(c) for c in stored.tolist()]
    elif not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise _fail(where, "'classes' must be a list of class names.")
    default_name = os.path.splitext(os.path.basename(path))[0] if os.path.isfile(path) else os.path.basename(os.path.normpath(path))
    name = manifest.get("name") or default_name
    description = manifest.get("description") or {}
    if not isinstance(description, dict):
        raise _fail(where, "'description' must map set names to text.")
    return Benchmark(
        name=str(name),
        id_test=id_test,
        ood=ood,
        id_train=id_train,
        mean=_floats(manifest.get("mean"), "mean", where),
        std=_floats(manifest.get("std"), "std", where),
        classes=classes,
        description={str(k): str(v) for k, v in description.items()},
    )
