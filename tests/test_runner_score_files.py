"""Per-sample score files from OpenOOD-shaped scores and loaders (no OpenOOD needed)."""
import os
from types import SimpleNamespace

import numpy as np
import pytest

from gaia_openood.runner.score_files import score_splits, write_score_files


def loader(*names):
    return SimpleNamespace(dataset=SimpleNamespace(imglist=[f"{name} 3\n" for name in names]))


def triple(*conf):
    return [np.zeros(len(conf), int), np.array(conf, np.float32), np.full(len(conf), -1)]


SCORES = {
    "id": {"train": None, "val": None, "test": triple(0.9, 0.8)},
    "csid": {"cifar10c": None},
    "ood": {"val": None, "near": {"tin": triple(0.1)}, "far": {"svhn": triple(0.2, 0.3, 0.4), "mnist": None}},
}
LOADERS = {
    "id": {"test": loader("cifar10/a.png", "cifar10/b.png")},
    "csid": {"cifar10c": loader("c/a.png")},
    "ood": {"near": {"tin": loader("tin/a.png")}, "far": {"svhn": loader("s/a", "s/b", "s/c"), "mnist": loader("m")}},
}


def test_one_file_per_evaluated_split_with_image_names(tmp_path):
    splits = score_splits(SCORES, LOADERS, "cifar10")
    assert sorted(splits) == ["far_svhn", "id_cifar10", "near_tin"]
    paths = write_score_files(str(tmp_path / "gaia_a" / "s0"), splits)
    assert sorted(os.path.basename(p) for p in paths) == ["far_svhn.npz", "id_cifar10.npz", "near_tin.npz"]
    saved = np.load(tmp_path / "gaia_a" / "s0" / "far_svhn.npz")
    assert list(saved["image"]) == ["s/a", "s/b", "s/c"]
    np.testing.assert_array_equal(saved["conf"], np.array([0.2, 0.3, 0.4], np.float32))
    assert sorted(saved.files) == ["conf", "image", "label", "pred"]


def test_scores_that_do_not_fit_the_list_are_refused():
    loaders = {**LOADERS, "id": {"test": loader("cifar10/a.png")}}
    with pytest.raises(ValueError, match="2 scores for 1 listed images"):
        score_splits(SCORES, loaders, "cifar10")


def test_loaders_without_image_lists_give_scores_only():
    loaders = {**LOADERS, "id": {"test": SimpleNamespace(dataset=object())}}
    assert sorted(score_splits(SCORES, loaders, "cifar10")["id_cifar10"]) == ["conf", "label", "pred"]
