"""Tables and files of an evaluation: metrics per method and set, text / Markdown / CSV, scores.npz.

``metrics.csv`` has one row per method and OOD set plus OpenOOD's averages (rows
``nearood`` and ``farood``), values in percent::

    method,title,dataset,group,n_id,n_ood,FPR@95,AUROC,AUPR_IN,AUPR_OUT,ACC

``scores.npz`` holds everything needed to recompute it:

* ``conf/<method>/<set>``: (N,) float32 confidences, higher = more in-distribution; the ID
  test set is ``id``;
* ``labels``, ``pred``: ID test labels and the model's predicted classes (for ``ACC``);
* ``methods``, ``titles``, ``sets``, ``groups``: names, in table order (``sets[0]`` is ``id``);
* ``fpr_definition``: ``main`` or ``v1.5`` (see :mod:`gaia_openood.eval.metrics`).
"""
from __future__ import annotations

import csv
import dataclasses
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .metrics import FPR_DEFINITIONS, OODMetrics, average, check_fpr_definition, ood_metrics
from .scoring import EvalResult

__all__ = ["MetricRow", "metric_rows", "write_csv", "format_tables", "save_scores", "CSV_COLUMNS", "AVERAGE_NAMES"]

CSV_COLUMNS = ("method", "title", "dataset", "group", "n_id", "n_ood", "FPR@95", "AUROC", "AUPR_IN", "AUPR_OUT", "ACC")
AVERAGE_NAMES = {"near": "nearood", "far": "farood"}
_BLOCKS = (  # (attribute, heading, higher is better)
    ("auroc", "AUROC", True),
    ("fpr95", "FPR@95", False),
    ("aupr_in", "AUPR-IN", True),
    ("aupr_out", "AUPR-OUT", True),
)
_NAN = OODMetrics(math.nan, math.nan, math.nan, math.nan)


@dataclasses.dataclass(frozen=True)
class MetricRow:
    """Metrics of one method on one OOD set, or on the average of a group (``nearood``/``farood``)."""

    method: str
    title: str
    dataset: str
    group: str
    n_id: int
    n_ood: int
    metrics: OODMetrics
    accuracy: float

    @property
    def is_average(self) -> bool:
        return self.dataset in AVERAGE_NAMES.values()


def metric_rows(result: EvalResult, fpr_definition: str = "main") -> List[MetricRow]:
    """Rows for every method: each OOD set, then ``nearood`` after the near sets and ``farood`` after the far ones.

    A set whose scores are not all finite gets NaN metrics (shown as n/a) and is left out of
    the average.
    """
    check_fpr_definition(fpr_definition)
    n_id = result.sets[0][2]
    rows: List[MetricRow] = []
    for record in result.methods:
        conf = result.conf[record.key]
        for group in ("near", "far"):
            members = [(name, size) for name, g, size in result.ood_sets if g == group]
            if not members:
                continue
            valid = []
            for name, size in members:
                try:
                    values = ood_metrics(conf["id"], conf[name], fpr_definition)
                    valid.append(values)
                except ValueError:  # non-finite scores
                    values = _NAN
                rows.append(MetricRow(record.key, record.title, name, group, n_id, size, values, result.accuracy))
            total = sum(size for _, size in members)
            mean = average(valid) if len(valid) == len(members) else _NAN
            rows.append(MetricRow(record.key, record.title, AVERAGE_NAMES[group], group, n_id, total, mean, result.accuracy))
    return rows


def write_csv(rows: Sequence[MetricRow], path: str) -> None:
    """``metrics.csv``: one line per row, metrics and accuracy in percent (full precision)."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            m = row.metrics
            writer.writerow(
                [row.method, row.title, row.dataset, row.group, row.n_id, row.n_ood]
                + [f"{100 * v:.6f}" for v in (m.fpr95, m.auroc, m.aupr_in, m.aupr_out, row.accuracy)]
            )


def _columns(result: EvalResult) -> List[Tuple[str, str]]:
    """(dataset key, column heading) in table order: near sets, near-OOD, far sets, far-OOD."""
    columns = []
    for group, heading in (("near", "near-OOD"), ("far", "far-OOD")):
        names = [name for name, g, _ in result.ood_sets if g == group]
        columns += [(name, name) for name in names]
        if names:
            columns.append((AVERAGE_NAMES[group], heading))
    return columns


def _render(header: Sequence[str], body: Sequence[Sequence[str]], markdown: bool, text_columns: int = 1) -> str:
    """A table; the first ``text_columns`` columns are left-aligned, the rest (numbers) right-aligned."""
    if markdown:
        rule = ["---"] * text_columns + ["---:"] * (len(header) - text_columns)
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines)
    widths = [max(len(str(cells[i])) for cells in [header, *body]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if i < text_columns else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(cells) for cells in body])


def _value(v: float) -> str:
    return "n/a" if math.isnan(v) else f"{100 * v:.2f}"


def format_tables(
    result: EvalResult,
    rows: Sequence[MetricRow],
    *,
    fpr_definition: str = "main",
    markdown: bool = False,
    title: Optional[str] = None,
    descriptions: Optional[Dict[str, str]] = None,
) -> str:
    """The side-by-side report: one block per metric (methods x sets, with the near/far averages),
    the ID accuracy, what each set is, skipped methods, and the time each method took.

    The best value of each column is marked (bold in Markdown, ``*`` in text).
    """
    columns = _columns(result)
    table = {(row.method, row.dataset): row.metrics for row in rows}
    sizes = {name: size for name, _, size in result.sets}
    out: List[str] = []
    heading = title or f"GAIA and baselines on {result.benchmark}"
    out.append(f"## {heading}" if markdown else heading)
    out.append("")
    describe = descriptions or {}
    set_lines = []
    for name, group, size in result.sets:
        label = {"id": "ID test", "near": "near-OOD", "far": "far-OOD"}[group]
        text = f"{label} `{name}` ({size} images)" if markdown else f"{label} {name} ({size} images)"
        if describe.get(name):
            text += f": {describe[name]}"
        set_lines.append(("- " if markdown else "  ") + text)
    out += set_lines
    out.append("")
    out.append(
        f"Values in %. ID accuracy of the classifier: {100 * result.accuracy:.2f}% "
        f"({sizes['id']} images). {FPR_DEFINITIONS[fpr_definition]}. OOD is the positive class; "
        "near-OOD / far-OOD are the means over their sets, as in OpenOOD."
    )
    for attribute, name, higher in _BLOCKS:
        out.append("")
        arrow = "higher is better" if higher else "lower is better"
        out.append(f"### {name} ({arrow})" if markdown else f"{name} ({arrow})")
        if markdown:
            out.append("")
        header = ["method"] + [heading for _, heading in columns]
        best: Dict[str, float] = {}
        for key, _ in columns:
            values = [getattr(table[(r.key, key)], attribute) for r in result.methods]
            values = [v for v in values if not math.isnan(v)]
            if values:
                best[key] = max(values) if higher else min(values)
        body = []
        for record in result.methods:
            cells = [record.title]
            for key, _ in columns:
                v = getattr(table[(record.key, key)], attribute)
                text = _value(v)
                if key in best and not math.isnan(v) and round(100 * v, 2) == round(100 * best[key], 2):
                    text = f"**{text}**" if markdown else f"{text}*"
                elif not markdown:
                    text += " "
                cells.append(text)
            body.append(cells)
        out.append(_render(header, body, markdown))
    out.append("")
    out.append(_timing(result, markdown))
    if result.skipped:
        out.append("")
        out.append("Skipped:")
        out += [f"- {key}: {reason}" if markdown else f"  {key}: {reason}" for key, reason in result.skipped.items()]
    if result.notes:
        out.append("")
        out += [("- " if markdown else "  ") + note for note in result.notes]
    return "\n".join(out) + "\n"


def _timing(result: EvalResult, markdown: bool) -> str:
    scored = sum(size for _, _, size in result.sets)
    header = ["method", "source", "settings", "seconds", "ms / image"]
    body = []
    for record in result.methods:
        seconds = result.seconds.get(record.key, 0.0)
        body.append([record.title, record.source, record.settings, f"{seconds:.2f}", f"{1000 * seconds / scored:.3f}"])
    forward = result.seconds.get("forward", 0.0)
    body.append(["shared forward", "-", "logits + penultimate feature", f"{forward:.2f}", f"{1000 * forward / scored:.3f}"])
    if "fit" in result.seconds:
        body.append(["fitting", "-", "ID train features, KNN index, ReAct threshold", f"{result.seconds['fit']:.2f}", "-"])
    heading = f"Time on {result.device} ({scored} images scored)"
    heading = f"### {heading}\n" if markdown else heading
    return heading + "\n" + _render(header, body, markdown, text_columns=3)


def save_scores(result: EvalResult, path: str, fpr_definition: str = "main") -> None:
    """Write ``scores.npz`` (layout in the module docstring)."""
    arrays: Dict[str, np.ndarray] = {
        "methods": np.array([r.key for r in result.methods]),
        "titles": np.array([r.title for r in result.methods]),
        "sets": np.array([name for name, _, _ in result.sets]),
        "groups": np.array([group for _, group, _ in result.sets]),
        "labels": result.id_labels.astype(np.int64),
        "pred": result.id_pred.astype(np.int64),
        "fpr_definition": np.array(fpr_definition),
    }
    for key, per_set in result.conf.items():
        for name, values in per_set.items():
            arrays[f"conf/{key}/{name}"] = values.astype(np.float32)
    np.savez_compressed(path, **arrays)
