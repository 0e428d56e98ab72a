"""Score every set of a benchmark with every method: the core of ``gaia-openood eval``.

    >>> result = evaluate(model, benchmark, ["gaia_a", "msp"], device="cpu")   # doctest: +SKIP
    >>> result.conf["gaia_a"]["id"].shape                                       # doctest: +SKIP
    (10000,)

One pass over each set: per batch, one shared forward pass (logits and penultimate feature
for the logit- and feature-based methods and for the ID accuracy), then each method.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
import warnings
from typing import Callable, Dict, Iterator, List, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from ..model_state import model_device
from .benchmark import Benchmark, ImageSet
from .methods import Method, MethodContext, MethodUnavailable, build_methods, choose_backend, resolve_methods
from .network import Batch, NetworkView

__all__ = ["EvalResult", "MethodRecord", "evaluate"]


@dataclasses.dataclass(frozen=True)
class MethodRecord:
    """What a report says about one method: its name, source and fixed settings."""

    key: str
    title: str
    source: str
    settings: str


@dataclasses.dataclass
class EvalResult:
    """Per-sample confidences of every method on every set, and what is needed to judge them.

    Attributes:
        benchmark: the benchmark's name.
        methods: the methods that ran, in order.
        skipped: ``{method key: reason}`` for requested methods that could not run.
        sets: ``(name, group, size)`` of the ID test set (name "id", group "id") and each OOD
            set, in order.
        conf: ``conf[method][set]``: (N,) float32 confidences, higher = more in-distribution.
        id_labels: (N_id,) int64 labels of the ID test set.
        id_pred: (N_id,) int64 predicted classes (argmax of the model's logits).
        seconds: wall-clock seconds per method key, plus ``"forward"`` (the shared forward
            pass) and ``"fit"`` (features of the ID training subset and fitting).
        device: the device the scores were computed on.
        notes: free-text facts worth reporting (e.g. ReAct's threshold).
    """

    benchmark: str
    methods: List[MethodRecord]
    skipped: Dict[str, str]
    sets: List[Tuple[str, str, int]]
    conf: Dict[str, Dict[str, np.ndarray]]
    id_labels: np.ndarray
    id_pred: np.ndarray
    seconds: Dict[str, float]
    device: str
    notes: List[str] = dataclasses.field(default_factory=list)

    @property
    def ood_sets(self) -> List[Tuple[str, str, int]]:
        return [entry for entry in self.sets if entry[1] != "id"]

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.id_pred == self.id_labels))


class _Clock:
    """Wall-clock seconds per key; waits for the device so GPU work is counted where it ran."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: Dict[str, float] = {}

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextlib.contextmanager
    def measure(self, key: str) -> Iterator[None]:
        """Add the block's wall-clock time to ``seconds[key]``."""
        self._sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - start


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not enabled, leave=False, dynamic_ncols=True)


def _check_model_output(view: NetworkView, benchmark: Benchmark) -> None:
    if view.num_classes < benchmark.num_classes:
        raise ValueError(
            f"the model outputs {view.num_classes} logits but benchmark '{benchmark.name}' has "
            f"{benchmark.num_classes} classes; check --num-classes / the checkpoint."
        )


def _training_features(
    view: NetworkView, benchmark: Benchmark, train: ImageSet, batch_size: int, device: torch.device, progress: bool
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(N, D) penultimate features of the ID training subset on the CPU, and its (N,) labels."""
    features = []
    with _progress(len(train), "ID train features", progress) as bar:
        for x in benchmark.batches(train, batch_size, device):
            _, feature = view.forward(x)
            features.append(feature.cpu())
            bar.update(x.shape[0])
    return torch.cat(features), torch.from_numpy(train.y)


def _train_batches(
    benchmark: Benchmark, train: ImageSet, batch_size: int, device: torch.device
) -> Callable[[], Iterator[Tuple[torch.Tensor, torch.Tensor]]]:
    """A function yielding the ID training subset as (images on ``device``, CPU labels) batches."""

    def batches() -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        starts = range(0, len(train), batch_size)
        for start, x in zip(starts, benchmark.batches(train, batch_size, device)):
            yield x, torch.from_numpy(train.y[start : start + batch_size])

    return batches


def evaluate(
    model: nn.Module,
    benchmark: Benchmark,
    methods: Union[str, Sequence[str], None] = None,
    *,
    device: Union[str, torch.device, None] = None,
    batch_size: int = 128,
    backend: str = "auto",
    progress: bool = True,
) -> EvalResult:
    """Score the ID test set and every OOD set of ``benchmark`` with each method.

    Args:
        model: a classifier returning (B, C) logits; it is put in eval mode on ``device``.
        benchmark: the sets and their preprocessing.
        methods: registry keys (see :func:`gaia_openood.eval.methods.method_names`), a
            comma-separated string, or None for all.
        device: where to run (the model is moved there); default: where the model is.
        batch_size: images per batch.
        backend: where the baselines come from: ``"auto"``, ``"pytorch-ood"``, ``"openood"``.
        progress: show progress bars.

    Returns:
        An :class:`EvalResult`. Methods that cannot run (no ID training subset, no linear
        head) are listed in ``skipped`` with the reason instead of failing the run.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    keys = resolve_methods(methods)
    device = torch.device(device) if device is not None else (model_device(model) or torch.device("cpu"))
    model = model.to(device).eval()
    clock = _Clock(device)

    example = benchmark.preprocess(benchmark.id_test.x[:1], device)
    view = NetworkView(model, example)
    _check_model_output(view, benchmark)
    instances = build_methods(keys, choose_backend(backend))

    context = MethodContext(
        model=model, view=view, device=device, num_classes=view.num_classes, input_std=benchmark.std
    )
    train = benchmark.id_train
    if train is not None and view.head is not None and any(m.fits for m in instances):
        with clock.measure("fit"):
            context.train_features, context.train_labels = _training_features(
                view, benchmark, train, batch_size, device, progress
            )
        context.train_batches = _train_batches(benchmark, train, batch_size, device)

    ready: List[Method] = []
    skipped: Dict[str, str] = {}
    notes: List[str] = []
    for method in instances:
        try:
            with clock.measure("fit" if method.fits else method.key):
                method.setup(context)
        except MethodUnavailable as reason:
            skipped[method.key] = str(reason)
            continue
        ready.append(method)
        threshold = getattr(method, "threshold", None)
        if threshold is not None:
            notes.append(f"{method.title} clipping threshold: {threshold:.4g}")
    if not ready:
        raise ValueError("no method could run: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))

    conf: Dict[str, Dict[str, np.ndarray]] = {m.key: {} for m in ready}
    id_pred: List[np.ndarray] = []
    sets: List[Tuple[str, str, int]] = []
    for image_set in benchmark.sets():
        sets.append((image_set.name, image_set.group, len(image_set)))
        chunks: Dict[str, List[np.ndarray]] = {m.key: [] for m in ready}
        label = "ID test" if image_set.group == "id" else f"{image_set.name} ({image_set.group}-OOD)"
        with _progress(len(image_set), label, progress) as bar:
            for index, x in enumerate(benchmark.batches(image_set, batch_size, device)):
                batch = Batch(x, view)
                with clock.measure("forward"):
                    logits = batch.logits
                if image_set.group == "id":
                    id_pred.append(logits.argmax(dim=1).cpu().numpy())
                for method in ready:
                    with clock.measure(method.key):
                        scores = method.score(batch)
                    chunks[method.key].append(_checked(scores, x.shape[0], method, image_set, index))
                bar.update(x.shape[0])
        for key, parts in chunks.items():
            conf[key][image_set.name] = np.concatenate(parts)
    _warn_non_finite(conf)
    return EvalResult(
        benchmark=benchmark.name,
        methods=[MethodRecord(m.key, m.title, m.source, m.settings) for m in ready],
        skipped=skipped,
        sets=sets,
        conf=conf,
        id_labels=benchmark.id_test.y.astype(np.int64),
        id_pred=np.concatenate(id_pred).astype(np.int64),
        seconds=dict(clock.seconds),
        device=str(device),
        notes=notes,
    )


def _checked(scores: torch.Tensor, size: int, method: Method, image_set: ImageSet, index: int) -> np.ndarray:
    if not isinstance(scores, torch.Tensor) or scores.shape != (size,):
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise RuntimeError(
            f"{method.title} returned scores of shape {shape} for batch {index} of '{image_set.name}' "
            f"({size} images); expected ({size},)"
        )
    return scores.detach().float().cpu().numpy()


def _warn_non_finite(conf: Dict[str, Dict[str, np.ndarray]]) -> None:
    for key, per_set in conf.items():
        for name, values in per_set.items():
            bad = int(np.sum(~np.isfinite(values)))
            if bad:
                warnings.warn(f"{key} gave {bad} non-finite score(s) on '{name}'; its metrics there are undefined")
