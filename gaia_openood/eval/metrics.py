"""OOD detection metrics with OpenOOD's definitions.

Scores are confidences, higher = more in-distribution. As in OpenOOD, OOD is the positive
class and the detector's OOD score is ``-conf``:

* AUROC: area under the ROC curve (``sklearn.metrics.roc_curve``, trapezoids).
* AUPR-IN: area under the precision-recall curve with ID positive and score ``conf``.
* AUPR-OUT: the same with OOD positive and score ``-conf``. Both areas are trapezoids over
  ``sklearn.metrics.precision_recall_curve`` (OpenOOD's choice, not average precision).
* FPR@95, two definitions (see :data:`FPR_DEFINITIONS`). ``"main"`` (OpenOOD's main branch,
  the default): the fraction of ID samples flagged as OOD at the first ROC point where at
  least 95% of the OOD samples are flagged. ``"v1.5"`` (OpenOOD v1.5, the classic FPR95 of
  most papers, GAIA's included): the fraction of OOD samples accepted as ID at the first
  point where at least 95% of the ID samples are accepted. Both read the ROC points that
  ``roc_curve`` returns with its default ``drop_intermediate=True``, as OpenOOD does, so the
  values match OpenOOD's also when scores tie.

Every function returns fractions in [0, 1]; reports multiply by 100 as OpenOOD does.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Sequence, Tuple

import numpy as np
from sklearn import metrics as skm

__all__ = [
    "OODMetrics",
    "FPR_DEFINITIONS",
    "ood_metrics",
    "roc_points",
    "accuracy",
    "average",
    "check_fpr_definition",
]

FPR_DEFINITIONS: Dict[str, str] = {
    "main": "FPR@95 = fraction of ID samples flagged OOD when 95% of OOD samples are flagged (OpenOOD main)",
    "v1.5": "FPR@95 = fraction of OOD samples accepted as ID when 95% of ID samples are accepted (OpenOOD v1.5, classic)",
}
_RECALL = 0.95


@dataclasses.dataclass(frozen=True)
class OODMetrics:
    """Metrics of one ID-vs-OOD comparison, as fractions in [0, 1]."""

    fpr95: float
    auroc: float
    aupr_in: float
    aupr_out: float

    def as_dict(self) -> Dict[str, float]:
        return dataclasses.asdict(self)


def check_fpr_definition(definition: str) -> str:
    if definition not in FPR_DEFINITIONS:
        raise ValueError(f"unknown FPR@95 definition {definition!r}; choose one of {sorted(FPR_DEFINITIONS)}")
    return definition


def _scores_and_truth(conf_id: np.ndarray, conf_ood: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    conf_id = np.asarray(conf_id, dtype=np.float64).ravel()
    conf_ood = np.asarray(conf_ood, dtype=np.float64).ravel()
    if conf_id.size == 0 or conf_ood.size == 0:
        raise ValueError(f"need ID and OOD scores; got {conf_id.size} ID and {conf_ood.size} OOD")
    if not (np.isfinite(conf_id).all() and np.isfinite(conf_ood).all()):
        raise ValueError("scores contain NaN or infinite values")
    conf = np.concatenate([conf_id, conf_ood])
    is_ood = np.concatenate([np.zeros(conf_id.size, dtype=int), np.ones(conf_ood.size, dtype=int)])
    return conf, is_ood


def roc_points(conf_id: np.ndarray, conf_ood: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """ROC curve with OOD positive: (fraction of ID flagged, fraction of OOD flagged) per threshold."""
    conf, is_ood = _scores_and_truth(conf_id, conf_ood)
    fpr, tpr, _ = skm.roc_curve(is_ood, -conf)
    return fpr, tpr


def ood_metrics(conf_id: np.ndarray, conf_ood: np.ndarray, fpr_definition: str = "main") -> OODMetrics:
    """FPR@95, AUROC, AUPR-IN and AUPR-OUT of ID scores ``conf_id`` (N,) vs OOD scores ``conf_ood`` (M,).

    Higher confidence = more in-distribution; OOD is the positive class.
    """
    check_fpr_definition(fpr_definition)
    conf, is_ood = _scores_and_truth(conf_id, conf_ood)
    fpr, tpr, _ = skm.roc_curve(is_ood, -conf)
    auroc = skm.auc(fpr, tpr)
    if fpr_definition == "main":
        fpr95 = fpr[np.argmax(tpr >= _RECALL)]
    else:
        # ID positive: "tpr" is the fraction of ID accepted, "fpr" the fraction of OOD accepted
        ood_accepted, id_accepted, _ = skm.roc_curve(1 - is_ood, conf)
        fpr95 = ood_accepted[np.argmax(id_accepted >= _RECALL)]
    precision_in, recall_in, _ = skm.precision_recall_curve(1 - is_ood, conf)
    precision_out, recall_out, _ = skm.precision_recall_curve(is_ood, -conf)
    return OODMetrics(
        fpr95=float(fpr95),
        auroc=float(auroc),
        aupr_in=float(skm.auc(recall_in, precision_in)),
        aupr_out=float(skm.auc(recall_out, precision_out)),
    )


def accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of predicted classes (N,) against labels (N,)."""
    pred, labels = np.asarray(pred).ravel(), np.asarray(labels).ravel()
    if pred.shape != labels.shape or pred.size == 0:
        raise ValueError(f"pred and labels must be non-empty and of equal length, got {pred.shape} and {labels.shape}")
    return float(np.mean(pred == labels))


def average(results: Sequence[OODMetrics]) -> OODMetrics:
    """The mean of each metric over several OOD sets (OpenOOD's near-OOD / far-OOD rows)."""
    if not results:
        raise ValueError("nothing to average")
    fields = [f.name for f in dataclasses.fields(OODMetrics)]
    return OODMetrics(**{name: float(np.mean([getattr(r, name) for r in results])) for name in fields})
