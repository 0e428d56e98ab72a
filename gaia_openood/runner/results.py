"""Metric tables, their aggregation over training runs, and the CSV / Markdown files written.

The per-method CSV is byte for byte what OpenOOD's scripts write:

* ``scripts/eval_ood.py`` (seed folders): every cell ``"{mean:.2f} ± {std:.2f}"`` over the
  runs, the standard deviation with ``ddof=0`` (``np.std``), written by ``DataFrame.to_csv``;
* ``scripts/eval_ood_imagenet.py`` (one checkpoint): every cell ``"{value:.2f}"``.

Rows are OpenOOD's (near sets, ``nearood``, far sets, ``farood``), columns ``FPR@95,
AUROC, AUPR_IN, AUPR_OUT, ACC``; values are percentages. No pandas needed.
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np

__all__ = [
    "MetricsTable",
    "Aggregate",
    "aggregate",
    "format_mean_std",
    "format_plain",
    "write_csv",
    "write_openood_csv",
    "summary_rows",
    "write_summary",
    "FPR_NOTE",
]

FPR_NOTE = ("FPR@95 as OpenOOD computes it on main: the fraction of ID samples flagged as OOD "
            "when 95% of the OOD samples are detected (OOD is the positive class).")


@dataclass(frozen=True)
class MetricsTable:
    """One run's metrics: OpenOOD's ``eval_ood`` DataFrame without pandas."""

    rows: Tuple[str, ...]
    columns: Tuple[str, ...]
    values: np.ndarray

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64)
        if values.shape != (len(self.rows), len(self.columns)):
            raise ValueError(f"metrics of shape {values.shape} do not fit {len(self.rows)} rows "
                             f"x {len(self.columns)} columns")
        object.__setattr__(self, "rows", tuple(self.rows))
        object.__setattr__(self, "columns", tuple(self.columns))
        object.__setattr__(self, "values", values)

    @classmethod
    def from_frame(cls, frame: Any) -> "MetricsTable":
        """From the pandas DataFrame that OpenOOD's ``Evaluator.eval_ood`` returns."""
        return cls(tuple(str(r) for r in frame.index), tuple(str(c) for c in frame.columns), frame.to_numpy())

    def to_dict(self) -> Dict[str, Any]:
        """JSON-friendly form: ``{"rows": [...], "columns": [...], "values": [[...]]}``."""
        return {"rows": list(self.rows), "columns": list(self.columns), "values": self.values.tolist()}

    def value(self, row: str, column: str) -> float:
        return float(self.values[self.rows.index(row), self.columns.index(column)])


@dataclass(frozen=True)
class Aggregate:
    """Mean and standard deviation (``ddof=0``) of the same table over ``runs`` runs.

    ``plain`` selects OpenOOD's single-model format (``"76.02"``) over ``"76.02 ± 0.00"``.
    """

    rows: Tuple[str, ...]
    columns: Tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    runs: int
    plain: bool = False

    def cell(self, row: str, column: str) -> str:
        """The formatted cell of ``row``, ``column``."""
        i, j = self.rows.index(row), self.columns.index(column)
        return self._format(i, j)

    def _format(self, i: int, j: int) -> str:
        if self.plain:
            return format_plain(self.mean[i, j])
        return format_mean_std(self.mean[i, j], self.std[i, j])

    def cells(self) -> List[List[str]]:
        """Every formatted cell, row by row."""
        return [[self._format(i, j) for j in range(len(self.columns))] for i in range(len(self.rows))]


def format_mean_std(mean: float, std: float) -> str:
    """OpenOOD's cell over seeds: ``'88.03 ± 0.25'``."""
    return "{:.2f} \u00b1 {:.2f}".format(mean, std)


def format_plain(value: float) -> str:
    """OpenOOD's single-model cell: ``'88.03'``; an empty cell for NaN, as pandas writes it."""
    return "" if math.isnan(value) else "{:.2f}".format(value)


def aggregate(tables: Sequence[MetricsTable], plain: bool = False) -> Aggregate:
    """Mean and ``np.std`` over runs, as OpenOOD's ``scripts/eval_ood.py`` computes them.

    ``plain=True`` (one run only) gives OpenOOD's single-model format.
    """
    if not tables:
        raise ValueError("no runs to aggregate")
    first = tables[0]
    for table in tables[1:]:
        if table.rows != first.rows or table.columns != first.columns:
            raise ValueError(f"runs disagree on the table layout: rows {first.rows} vs {table.rows}, "
                             f"columns {first.columns} vs {table.columns}")
    if plain and len(tables) != 1:
        raise ValueError(f"the single-model format needs exactly one run, got {len(tables)}")
    stacked = np.stack([t.values for t in tables], axis=0)
    return Aggregate(first.rows, first.columns, stacked.mean(axis=0), stacked.std(axis=0), len(tables), plain)


def write_csv(path: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Write a CSV the way ``DataFrame.to_csv`` does (minimal quoting, ``os.linesep``); returns path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator=os.linesep)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_openood_csv(path: str, result: Aggregate) -> str:
    """The per-method CSV in OpenOOD's format (see the module docstring)."""
    rows = [[name, *cells] for name, cells in zip(result.rows, result.cells())]
    return write_csv(path, ["", *result.columns], rows)


def summary_rows(results: Mapping[str, Aggregate], names: Mapping[str, str]) -> Tuple[List[str], List[List[str]]]:
    """The side-by-side table: one row per method, AUROC of every OOD set and split, FPR@95 of
    the splits, ID accuracy. ``names`` maps a method to the name shown."""
    if not results:
        raise ValueError("no results to tabulate")
    layout = next(iter(results.values()))
    header = ["Postprocessor", *(f"AUROC {row}" for row in layout.rows),
              "FPR@95 nearood", "FPR@95 farood", "ACC"]
    body = []
    for method, result in results.items():
        if result.rows != layout.rows:
            raise ValueError(f"{method}: rows {result.rows} differ from {layout.rows}")
        body.append([names.get(method, method), *(result.cell(row, "AUROC") for row in result.rows),
                     result.cell("nearood", "FPR@95"), result.cell("farood", "FPR@95"),
                     result.cell("nearood", "ACC")])
    return header, body


def _markdown(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def write_summary(stem: str, results: Mapping[str, Aggregate], names: Mapping[str, str], title: str) -> Tuple[str, str]:
    """Write ``<stem>.csv`` and ``<stem>.md`` (with ``title`` and notes); returns both paths."""
    header, body = summary_rows(results, names)
    csv_path = write_csv(stem + ".csv", header, body)
    md_path = stem + ".md"
    with open(md_path, "w", encoding="utf-8") as handle:
        handle.write(f"# {title}\n\n")
        handle.write(_markdown(header, body))
        handle.write(f"\nValues in %. {FPR_NOTE} ACC: accuracy on the ID test set "
                     "(on ID + covariate-shifted ID with --fsood).\n")
    return csv_path, md_path
