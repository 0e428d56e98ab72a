"""The methods ``gaia-openood eval`` compares: GAIA-Z, GAIA-A and baselines from a maintained library.

Every method maps a batch to (B,) float32 confidences on the model's device, **higher =
more in-distribution**. GAIA comes from this package's detectors. The baselines are not
reimplemented: they come from pytorch-ood (default) or, with ``backend="openood"``, from
OpenOOD's own postprocessors (:mod:`gaia_openood.eval.openood_baselines`). pytorch-ood's
detectors return outlier scores (higher = more OOD); :func:`conf_from_outlier_score` is the one
place where the sign flips.

Settings are OpenOOD's defaults for CIFAR (``configs/postprocessors/*.yml``), fixed: the
benchmarks here have no OOD validation split, so there is no hyperparameter search.

=========  ======================================================================  ============
key        score (conf)                                                            fits on
=========  ======================================================================  ============
gaia_z     GAIA-Z, zero-deflation abnormality of normalization-layer gradients       -
gaia_a     GAIA-A, channel-wise average abnormality                                  -
msp        max softmax probability                                                   -
maxlogit   max logit                                                                 -
energy     logsumexp of the logits (T = 1)                                           -
odin       MSP at T = 1000 after an input step of 0.0014 / std (per channel)         -
gradnorm   L1 norm of the gradient of the KL to uniform w.r.t. the head's weights    -
react      energy after clipping the penultimate feature at its 90th percentile      ID train
ash        energy after ASH-B (keep the top 10% of the penultimate feature)          -
knn        minus the distance to the 50th nearest normalized ID training feature     ID train
=========  ======================================================================  ============

ReAct's clipping threshold is the 90th percentile of all penultimate activations of the ID
training subset (the ReAct paper estimates it on ID training data; OpenOOD uses its ID
validation split). ASH needs no statistics: its percentile is a per-sample pruning fraction.
"""
from __future__ import annotations

import dataclasses
import difflib
from typing import Callable, ClassVar, Dict, List, Optional, Sequence, Tuple, Type, Union

import torch
from torch import Tensor, nn

from ..detector import GAIAA, GAIAZ
from ..versions import installed_version
from .network import Batch, NetworkView

__all__ = [
    "Method",
    "MethodContext",
    "MethodUnavailable",
    "METHODS",
    "BACKENDS",
    "method_names",
    "resolve_methods",
    "build_methods",
    "choose_backend",
    "conf_from_outlier_score",
]

BACKENDS = ("auto", "pytorch-ood", "openood")


class MethodUnavailable(Exception):
    """A method cannot run in this setting (e.g. no ID training subset); the message says why."""


@dataclasses.dataclass
class MethodContext:
    """What methods may use to set themselves up.

    Attributes:
        model: the classifier, in eval mode, on ``device``.
        view: its split into penultimate feature and linear head.
        device: where scores are computed.
        num_classes: number of logits.
        input_std: per-channel std of the input normalisation (None: inputs not normalised).
        train_features: (N, D) float32 penultimate features of the ID training subset on the
            CPU, or None when the benchmark has no training subset.
        train_labels: (N,) int64 labels of that subset.
        train_batches: a function yielding the subset as (images on ``device``, CPU labels)
            batches (for backends that extract what they need themselves), or None.
    """

    model: nn.Module
    view: NetworkView
    device: torch.device
    num_classes: int
    input_std: Optional[Tuple[float, ...]] = None
    train_features: Optional[Tensor] = None
    train_labels: Optional[Tensor] = None
    train_batches: Optional[Callable[[], object]] = None

    def require_head(self, title: str) -> nn.Linear:
        if self.view.head is None:
            raise MethodUnavailable(
                f"{title} reads the penultimate feature, the input of the model's final nn.Linear, "
                "and this model's logits do not come from one"
            )
        return self.view.head

    def require_training_features(self, title: str) -> Tuple[Tensor, Tensor]:
        self.require_head(title)
        if self.train_features is None or self.train_labels is None:
            raise MethodUnavailable(
                f"{title} fits on ID training data and the benchmark has no ID training subset "
                "(add id_train.npz to the benchmark folder)"
            )
        return self.train_features, self.train_labels


class Method:
    """Base class: ``setup`` once per run, then ``score`` per batch.

    Class attributes:
        key: registry name (``--methods``).
        title: display name.
        fits: whether it needs the ID training subset.
        settings: its fixed hyperparameters, for reports.
    """

    key: ClassVar[str] = ""
    title: ClassVar[str] = ""
    fits: ClassVar[bool] = False
    settings: ClassVar[str] = ""
    source: str = "gaia-openood"

    def setup(self, context: MethodContext) -> None:
        """Prepare for scoring; raise :class:`MethodUnavailable` when the method cannot run."""

    def score(self, batch: Batch) -> Tensor:
        """(B,) float32 confidences of a batch, higher = more in-distribution."""
        raise NotImplementedError


class _GAIA(Method):
    detector_class: ClassVar[type] = GAIAZ

    def setup(self, context: MethodContext) -> None:
        self.detector = self.detector_class(context.model)

    def score(self, batch: Batch) -> Tensor:
        return self.detector.score(batch.x)


class GAIAZMethod(_GAIA):
    key, title, detector_class = "gaia_z", "GAIA-Z", GAIAZ
    settings = "every normalization layer (no hyperparameters)"


class GAIAAMethod(_GAIA):
    key, title, detector_class = "gaia_a", "GAIA-A", GAIAA
    settings = "norm layers of the two smallest-resolution stages (no hyperparameters)"


def conf_from_outlier_score(outlier_score: Tensor) -> Tensor:
    """pytorch-ood's outlier score (higher = more OOD) -> confidence (higher = more ID), float32."""
    return (-outlier_score.detach()).float()


def _pytorch_ood_version() -> str:
    return f"pytorch-ood {installed_version('pytorch-ood', missing='')}".strip()


class _PytorchOOD(Method):
    source = "pytorch-ood"


class _FromLogits(_PytorchOOD):
    """A pytorch-ood detector that scores the logits of the shared forward pass."""

    def make_detector(self):
        raise NotImplementedError

    def setup(self, context: MethodContext) -> None:
        self.detector = self.make_detector()

    def score(self, batch: Batch) -> Tensor:
        return conf_from_outlier_score(self.detector.predict_logits(batch.logits))


class MSP(_FromLogits):
    key, title, settings = "msp", "MSP", "T = 1"

    def make_detector(self):
        from pytorch_ood.detector import MaxSoftmax

        return MaxSoftmax(None, t=1.0)


class MaxLogit(_FromLogits):
    key, title, settings = "maxlogit", "MaxLogit", "-"

    def make_detector(self):
        from pytorch_ood.detector import MaxLogit as Detector

        return Detector(None)


class Energy(_FromLogits):
    key, title, settings = "energy", "Energy", "T = 1"

    def make_detector(self):
        from pytorch_ood.detector import EnergyBased

        return EnergyBased(None, t=1.0)


class ODIN(_PytorchOOD):
    key, title, settings = "odin", "ODIN", "T = 1000, eps = 0.0014 (in [0, 1] pixel units)"

    def setup(self, context: MethodContext) -> None:
        from pytorch_ood.detector import ODIN as Detector

        std = list(context.input_std) if context.input_std is not None else None
        self.detector = Detector(context.model, eps=0.0014, temperature=1000.0, norm_std=std)

    def score(self, batch: Batch) -> Tensor:
        return conf_from_outlier_score(self.detector.predict(batch.x))


class GradNorm(_PytorchOOD):
    key, title, settings = "gradnorm", "GradNorm", "head weights only, T = 1"

    def setup(self, context: MethodContext) -> None:
        from pytorch_ood.detector import GradNorm as Detector

        # the gradient w.r.t. the head's weights depends only on the head's input, so the
        # detector runs on the head alone, fed the penultimate feature: same scores, no
        # second pass through the backbone
        head = context.require_head(self.title)
        self.detector = Detector(head, param_filter=lambda name: name == "weight", micro_batch_size=4096)

    def score(self, batch: Batch) -> Tensor:
        return conf_from_outlier_score(self.detector.predict(batch.feature))


class ReAct(_PytorchOOD):
    key, title, fits, settings = "react", "ReAct", True, "clip at the 90th percentile of ID train features, energy"

    def setup(self, context: MethodContext) -> None:
        from pytorch_ood.detector import ReAct as Detector

        features, labels = context.require_training_features(self.title)
        head = context.require_head(self.title)
        self.detector = Detector(backbone=context.view.forward, head=head, percentile=0.90)
        self.detector.fit_feature_maps(features, labels)

    @property
    def threshold(self) -> float:
        return float(self.detector.threshold)

    def score(self, batch: Batch) -> Tensor:
        return conf_from_outlier_score(self.detector.predict_feature_maps(batch.feature))


class ASH(_PytorchOOD):
    key, title, settings = "ash", "ASH", "ASH-B, percentile 90, on the penultimate feature, energy"

    def setup(self, context: MethodContext) -> None:
        from pytorch_ood.detector import ASH as Detector

        head = context.require_head(self.title)
        self.detector = Detector(
            backbone=context.view.forward, head=lambda maps: head(maps.flatten(1)), variant="ash-b", percentile=0.90
        )

    def score(self, batch: Batch) -> Tensor:
        feature = batch.feature
        return conf_from_outlier_score(self.detector.predict_feature_maps(feature[:, :, None, None]))


class KNN(_PytorchOOD):
    key, title, fits, settings = "knn", "KNN", True, "k = 50, normalized features"

    K = 50

    @classmethod
    def check_size(cls, features: Tensor) -> None:
        if features.shape[0] < cls.K:
            raise MethodUnavailable(
                f"KNN uses the {cls.K}th neighbour and the ID training subset has only {features.shape[0]} images"
            )

    def setup(self, context: MethodContext) -> None:
        from pytorch_ood.detector import KNN as Detector

        features, labels = context.require_training_features(self.title)
        self.check_size(features)
        self.detector = Detector(encoder=None, k=self.K)
        self.detector.fit_features(features, labels)

    def score(self, batch: Batch) -> Tensor:
        return conf_from_outlier_score(self.detector.predict_features(batch.feature)).to(batch.x.device)


METHODS: Dict[str, Type[Method]] = {
    cls.key: cls for cls in (GAIAZMethod, GAIAAMethod, MSP, MaxLogit, Energy, ODIN, GradNorm, ReAct, ASH, KNN)
}
_ALIASES = {"ebo": "energy", "mls": "maxlogit"}


def _normalized(name: str) -> str:
    return name.strip().lower().replace("-", "").replace("_", "")


def method_names() -> List[str]:
    """The registry keys, in report order."""
    return list(METHODS)


def resolve_methods(names: Union[str, Sequence[str], None]) -> List[str]:
    """Registry keys from user input: a comma-separated string or a list; None means all.

    Case, ``-`` and ``_`` do not matter (``GAIA-Z`` = ``gaia_z``); OpenOOD's names ``ebo``
    and ``mls`` are understood. Raises ValueError naming the unknown ones and the known ones.
    """
    if names is None:
        return method_names()
    if isinstance(names, str):
        names = [part for part in names.split(",")]
    lookup = {_normalized(key): key for key in METHODS}
    lookup.update(_ALIASES)
    keys: List[str] = []
    unknown: List[str] = []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        key = lookup.get(_normalized(name))
        if key is None:
            unknown.append(name)
        elif key not in keys:
            keys.append(key)
    if unknown:
        hints = {u: difflib.get_close_matches(u.lower().replace("-", "_"), method_names(), n=2) for u in unknown}
        hint = "; ".join(f"{u}: did you mean {h}?" for u, h in hints.items() if h)
        raise ValueError(
            f"unknown method(s) {unknown}. Known methods: {', '.join(method_names())}." + (f" ({hint})" if hint else "")
        )
    if not keys:
        raise ValueError(f"no method given. Known methods: {', '.join(method_names())}.")
    return keys


def choose_backend(backend: str = "auto") -> str:
    """``"pytorch-ood"`` or ``"openood"``: where the baselines come from.

    ``"auto"`` takes OpenOOD's postprocessors when OpenOOD imports, pytorch-ood's detectors
    otherwise. Raises ImportError when the requested library is missing.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown baseline backend {backend!r}; choose one of {BACKENDS}")
    if backend in ("auto", "openood"):
        from ..openood import OPENOOD_IMPORT_ERROR, openood_available

        if openood_available():
            return "openood"
        if backend == "openood":
            reason = f" (import failed: {OPENOOD_IMPORT_ERROR!r})" if OPENOOD_IMPORT_ERROR else ""
            raise ImportError(
                "--baselines openood needs OpenOOD, which is not importable" + reason + ". Install it from its "
                "repository, or use --baselines pytorch-ood."
            )
    try:
        import pytorch_ood  # noqa: F401
    except ImportError as error:
        raise ImportError(f"the baselines need pytorch-ood ({error}); install it with `pip install pytorch-ood`") from None
    return "pytorch-ood"


def build_methods(keys: Sequence[str], backend: str = "pytorch-ood") -> List[Method]:
    """Instances of the methods ``keys`` (registry keys) with baselines from ``backend``."""
    if backend == "openood":
        from .openood_baselines import OPENOOD_METHODS

        registry = {**METHODS, **OPENOOD_METHODS}
    elif backend == "pytorch-ood":
        registry = METHODS
    else:
        raise ValueError(f"backend must be 'pytorch-ood' or 'openood' here, got {backend!r}")
    methods = []
    for key in resolve_methods(list(keys)):
        method = registry[key]()
        if method.source == "pytorch-ood":
            method.source = _pytorch_ood_version()
        methods.append(method)
    return methods
