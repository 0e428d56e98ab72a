"""Per-sample scores of one (method, run) as ``.npz`` files, one per dataset split.

From OpenOOD's ``Evaluator.scores`` (``[pred, conf, label]`` per split) and its data
loaders (the image names, in order: the runner never shuffles), files named
``id_<dataset>.npz``, ``csid_<dataset>.npz``, ``near_<dataset>.npz``, ``far_<dataset>.npz``
with the arrays ``conf`` (OpenOOD's confidence: higher = more ID), ``pred``, ``label``
(-1 for OOD lists) and ``image`` (paths relative to the list's data folder).
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional

import numpy as np

__all__ = ["score_splits", "write_score_files"]


def _image_names(loader: Any) -> Optional[np.ndarray]:
    lines = getattr(getattr(loader, "dataset", None), "imglist", None)
    if lines is None:
        return None
    return np.array([line.strip("\n").split(" ", 1)[0] for line in lines])


def _split(triple: Any, loader: Any, where: str) -> Dict[str, np.ndarray]:
    pred, conf, label = (np.asarray(part) for part in triple)
    arrays = {"conf": conf, "pred": pred, "label": label}
    names = _image_names(loader)
    if names is not None:
        if len(names) != len(conf):
            raise ValueError(f"{where}: {len(conf)} scores for {len(names)} listed images; "
                             "scores must come from an unshuffled loader")
        arrays["image"] = names
    return arrays


def score_splits(scores: Mapping[str, Any], loaders: Mapping[str, Any], id_name: str) -> Dict[str, Dict[str, np.ndarray]]:
    """``{"id_cifar10": {...}, "near_tin": {...}, ...}`` from an evaluator's scores and loaders.

    Splits that were not evaluated (None) are left out.
    """
    splits: Dict[str, Dict[str, np.ndarray]] = {}
    if scores["id"]["test"] is not None:
        splits[f"id_{id_name}"] = _split(scores["id"]["test"], loaders["id"]["test"], f"id_{id_name}")
    for name, triple in scores.get("csid", {}).items():
        if triple is not None:
            splits[f"csid_{name}"] = _split(triple, loaders["csid"][name], f"csid_{name}")
    for group in ("near", "far"):
        for name, triple in scores["ood"][group].items():
            if triple is not None:
                splits[f"{group}_{name}"] = _split(triple, loaders["ood"][group][name], f"{group}_{name}")
    return splits


def write_score_files(folder: str, splits: Mapping[str, Mapping[str, np.ndarray]]) -> List[str]:
    """Write ``<folder>/<split>.npz`` (compressed) for every split; returns the paths."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for split, arrays in splits.items():
        path = os.path.join(folder, f"{split}.npz")
        np.savez_compressed(path, **arrays)
        paths.append(path)
    return paths
