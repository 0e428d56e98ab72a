"""The files a leaderboard submission needs.

OpenOOD's leaderboard keeps one table per benchmark on its ``leaderboard`` branch
(``results/cifar10.csv``, ``results/imagenet200_ood.csv``, ``results/imagenet1k_fsood.csv``
...) with the columns of :data:`COLUMNS`; an entry is a row of that table, or an issue
with the evaluation CSVs attached (its issue template "adding-leaderboard-entry").
This module writes both: ``<file>.csv`` with one row per method in that column format,
and ``<file stem>_<method>.csv``, the method's OpenOOD CSV named so that the attachments
of several benchmarks do not collide.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Dict, List, Mapping

from .results import Aggregate, write_csv

__all__ = ["COLUMNS", "EntryInfo", "leaderboard_row", "write_leaderboard"]

COLUMNS = ("Training", "Postprocessor", "Near-OOD_AUROC", "Far-OOD_AUROC", "ID_Accuracy",
           "Outlier_Data", "Arch", "Additional_Description")


@dataclass(frozen=True)
class EntryInfo:
    """What the metrics do not say: the leaderboard's descriptive columns."""

    training: str = "CrossEntropy"
    outlier_data: str = "No"
    arch: str = "ResNet18"
    description: str = "100 epochs"


def leaderboard_row(result: Aggregate, postprocessor: str, info: EntryInfo) -> Dict[str, str]:
    """One leaderboard row: AUROC of the ``nearood`` and ``farood`` rows, ID accuracy."""
    return {
        "Training": info.training,
        "Postprocessor": postprocessor,
        "Near-OOD_AUROC": result.cell("nearood", "AUROC"),
        "Far-OOD_AUROC": result.cell("farood", "AUROC"),
        "ID_Accuracy": result.cell("nearood", "ACC"),
        "Outlier_Data": info.outlier_data,
        "Arch": info.arch,
        "Additional_Description": info.description,
    }


def write_leaderboard(folder: str, file_name: str, results: Mapping[str, Aggregate],
                      names: Mapping[str, str], method_csvs: Mapping[str, str], info: EntryInfo) -> List[str]:
    """Write ``folder/file_name`` (the rows) and one attachment per method; returns the paths.

    ``names`` maps a method to its leaderboard alias, ``method_csvs`` to its OpenOOD CSV.
    """
    rows = [leaderboard_row(result, names.get(method, method), info) for method, result in results.items()]
    paths = [write_csv(os.path.join(folder, file_name), COLUMNS, [[row[c] for c in COLUMNS] for row in rows])]
    stem = os.path.splitext(file_name)[0]
    for method in results:
        target = os.path.join(folder, f"{stem}_{method}.csv")
        shutil.copyfile(method_csvs[method], target)
        paths.append(target)
    return paths
