"""Recompute the metrics of ``gaia-openood eval`` runs with OpenOOD's own metric code.

    python scripts/check_metrics_with_openood.py runs/digits runs/cifar10-mini-resnet20

Needs OpenOOD importable (``openood.evaluators.metrics``). For every run folder, every row
of ``metrics.csv`` (each method and OOD set, and the near/far averages) is recomputed from
``scores.npz`` with ``compute_all_metrics`` (OpenOOD main: OOD positive, FPR@95 at 95% OOD
recall) and the largest difference is printed, in percentage points. Runs made with
``--fpr-definition v1.5`` are refused: OpenOOD main computes the other FPR@95.
"""
import csv
import os
import sys

import numpy as np
from openood.evaluators.metrics import compute_all_metrics

COLUMNS = ("FPR@95", "AUROC", "AUPR_IN", "AUPR_OUT", "ACC")
AVERAGES = {"near": "nearood", "far": "farood"}


def check(folder: str) -> float:
    scores = np.load(os.path.join(folder, "scores.npz"))
    if str(scores["fpr_definition"]) != "main":
        raise SystemExit(f"{folder}: made with --fpr-definition {scores['fpr_definition']}; OpenOOD main reports 'main'")
    with open(os.path.join(folder, "metrics.csv")) as handle:
        rows = {(r["method"], r["dataset"]): r for r in csv.DictReader(handle)}
    worst = 0.0
    for method in scores["methods"]:
        per_group = {}
        conf_id = scores[f"conf/{method}/id"]
        for name, group in zip(scores["sets"][1:], scores["groups"][1:]):
            conf_ood = scores[f"conf/{method}/{name}"]
            conf = np.concatenate([conf_id, conf_ood])
            label = np.concatenate([scores["labels"], -np.ones(len(conf_ood), int)])
            pred = np.concatenate([scores["pred"], np.zeros(len(conf_ood), int)])
            values = 100 * np.array(compute_all_metrics(conf, label, pred))
            per_group.setdefault(str(group), []).append(values)
            worst = max(worst, _difference(rows[(str(method), str(name))], values))
        for group, values in per_group.items():
            worst = max(worst, _difference(rows[(str(method), AVERAGES[group])], np.mean(values, axis=0)))
    print(f"{folder}: {len(rows)} rows, largest difference to OpenOOD {worst:.2g} percentage points")
    return worst


def _difference(row: dict, values: np.ndarray) -> float:
    return float(np.abs(np.array([float(row[c]) for c in COLUMNS]) - values).max())


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    largest = max(check(folder) for folder in sys.argv[1:])
    sys.exit(0 if largest < 1e-3 else 1)
