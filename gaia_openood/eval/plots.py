"""Figures of an evaluation (matplotlib, Agg backend, PNG).

* ``scores.png``: one panel per method, the distribution of its confidences on the ID test
  set (grey, filled) and on each OOD set (near-OOD warm colours, far-OOD cool colours).
* ``roc.png``: one panel per OOD set, every method's ROC curve (OOD positive), with the
  95% OOD-recall line at which OpenOOD's FPR@95 is read.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .metrics import roc_points
from .scoring import EvalResult

__all__ = ["plot_scores", "plot_roc"]

_NEAR_COLOURS = ("#d62728", "#ff7f0e", "#8c564b", "#e377c2")
_FAR_COLOURS = ("#1f77b4", "#2ca02c", "#17becf", "#9467bd", "#bcbd22")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _set_colours(result: EvalResult) -> Dict[str, str]:
    colours: Dict[str, str] = {}
    near = [name for name, g, _ in result.ood_sets if g == "near"]
    far = [name for name, g, _ in result.ood_sets if g == "far"]
    for i, name in enumerate(near):
        colours[name] = _NEAR_COLOURS[i % len(_NEAR_COLOURS)]
    for i, name in enumerate(far):
        colours[name] = _FAR_COLOURS[i % len(_FAR_COLOURS)]
    return colours


def _grid(count: int, max_columns: int) -> Tuple[int, int]:
    columns = min(count, max_columns)
    return int(math.ceil(count / columns)), columns


def _range(arrays: Sequence[np.ndarray]) -> Tuple[float, float]:
    """A histogram range that ignores the 0.5% most extreme values on each side."""
    values = np.concatenate([a[np.isfinite(a)] for a in arrays])
    if values.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(values, [0.5, 99.5])
    if high <= low:
        low, high = float(values.min()), float(values.max())
    if high <= low:
        low, high = low - 0.5, high + 0.5
    pad = 0.02 * (high - low)
    return float(low - pad), float(high + pad)


def plot_scores(result: EvalResult, path: str, title: Optional[str] = None) -> None:
    """Confidence histograms of ID vs each OOD set, one panel per method, saved to ``path``."""
    plt = _pyplot()
    colours = _set_colours(result)
    rows, columns = _grid(len(result.methods), 4)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    for axis in axes.flat[len(result.methods) :]:
        axis.set_visible(False)
    for axis, record in zip(axes.flat, result.methods):
        conf = result.conf[record.key]
        low, high = _range(list(conf.values()))
        bins = np.linspace(low, high, 41)
        axis.hist(np.clip(conf["id"], low, high), bins=bins, density=True, color="0.6", alpha=0.6, label="ID test")
        for name, group, _ in result.ood_sets:
            axis.hist(
                np.clip(conf[name], low, high), bins=bins, density=True, histtype="step", linewidth=1.6,
                color=colours[name], label=f"{name} ({group})",
            )
        axis.set_title(record.title, fontsize=11)
        axis.set_xlabel("confidence (higher = more ID)", fontsize=8)
        axis.set_yticks([])
        axis.tick_params(labelsize=7)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=9, frameon=False)
    figure.suptitle(title or f"{result.benchmark}: score distributions, ID vs OOD", fontsize=12)
    figure.tight_layout(rect=(0, 0.06 if rows > 1 else 0.1, 1, 0.96))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_roc(result: EvalResult, path: str, title: Optional[str] = None) -> None:
    """ROC curves of every method, one panel per OOD set, saved to ``path``."""
    plt = _pyplot()
    sets = result.ood_sets
    rows, columns = _grid(len(sets), 3)
    figure, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 4.3 * rows), squeeze=False)
    for axis in axes.flat[len(sets) :]:
        axis.set_visible(False)
    cmap = plt.get_cmap("tab10")
    styles: List[dict] = []
    for i, record in enumerate(result.methods):
        gaia = record.key.startswith("gaia")
        styles.append({"color": cmap(i % 10), "linewidth": 2.2 if gaia else 1.2, "linestyle": "-" if i < 10 else "--"})
    for axis, (name, group, _) in zip(axes.flat, sets):
        for record, style in zip(result.methods, styles):
            conf = result.conf[record.key]
            try:
                fpr, tpr = roc_points(conf["id"], conf[name])
            except ValueError:  # non-finite scores
                continue
            auroc = float(np.trapezoid(tpr, fpr)) if hasattr(np, "trapezoid") else float(np.trapz(tpr, fpr))
            axis.plot(fpr, tpr, label=f"{record.title} ({100 * auroc:.1f})", **style)
        axis.plot([0, 1], [0, 1], color="0.75", linewidth=0.8)
        axis.axhline(0.95, color="0.4", linewidth=0.8, linestyle=":")
        axis.set_xlim(0, 1)
        axis.set_ylim(0, 1.01)
        axis.set_title(f"{name} ({group}-OOD)", fontsize=11)
        axis.set_xlabel("ID flagged as OOD (FPR)", fontsize=9)
        axis.set_ylabel("OOD flagged (TPR)", fontsize=9)
        axis.legend(fontsize=7, loc="lower right", title="method (AUROC %)", title_fontsize=7)
        axis.tick_params(labelsize=8)
    figure.suptitle(title or f"{result.benchmark}: ROC curves (OOD positive; dotted: 95% OOD recall)", fontsize=12)
    figure.tight_layout(rect=(0, 0, 1, 0.95))
    figure.savefig(path, dpi=110)
    plt.close(figure)
