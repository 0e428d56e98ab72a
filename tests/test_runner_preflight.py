"""Checks before any work, on folders laid out like OpenOOD's, without OpenOOD."""
import os
import shutil

import pytest

from gaia_openood.runner.benchmarks import BENCHMARKS
from gaia_openood.runner.preflight import (DataLayout, PreflightError, check_config_files, check_configs,
                                           check_data, check_methods,
                                           find_seed_runs, image_lists, reads_training_split, require_openood,
                                           weight_runs)

CIFAR10 = BENCHMARKS["cifar10"]


def entry(name):
    return {"data_dir": "images_classic/", "imglist_path": f"benchmark_imglist/cifar10/{name}.txt"}


# the shape of OpenOOD's DATA_INFO / benchmarks_dict / dir_dict, cut down to a few lists
LAYOUT = DataLayout(
    data_info={"cifar10": {
        "num_classes": 10,
        "id": {"train": entry("train_cifar10"), "val": entry("val_cifar10"), "test": entry("test_cifar10")},
        "csid": {"datasets": ["cifar10c"], "cifar10c": entry("test_cifar10c")},
        "ood": {"val": entry("val_tin"),
                "near": {"datasets": ["tin"], "tin": entry("test_tin")},
                "far": {"datasets": ["svhn"], "svhn": entry("test_svhn")}},
    }},
    benchmark_datasets={"cifar10": ["cifar10", "tin", "svhn"]},
    folders={"images_classic/": ["cifar10", "tin", "svhn", "cifar10c"]},
)
LISTS = {"train_cifar10": "cifar10", "val_cifar10": "cifar10", "test_cifar10": "cifar10",
         "test_cifar10c": "cifar10c", "val_tin": "tin", "test_tin": "tin", "test_svhn": "svhn"}


@pytest.fixture
def data(tmp_path):
    """A complete data folder for LAYOUT: lists with two images each, every image present."""
    root = tmp_path / "data"
    for stem, dataset in LISTS.items():
        lst = root / "benchmark_imglist" / "cifar10" / f"{stem}.txt"
        lst.parent.mkdir(parents=True, exist_ok=True)
        folder = root / "images_classic" / dataset / stem
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(2):
            (folder / f"{index}.png").write_bytes(b"png")
        lst.write_text(f"{dataset}/{stem}/0.png 1\n{dataset}/{stem}/1.png 2\n")
    return root


def test_image_lists_follow_openoods_order():
    lists = image_lists(LAYOUT.data_info, "cifar10")
    assert [(e.group, e.name) for e in lists] == [
        ("id", "train"), ("id", "val"), ("id", "test"), ("csid", "cifar10c"), ("ood_val", "val"),
        ("near", "tin"), ("far", "svhn")]


def test_complete_data_passes(data):
    assert check_data(LAYOUT, CIFAR10, str(data), fsood=True, needs_train=True) == []


def test_missing_data_folder_and_lists(tmp_path, data):
    problems = check_data(LAYOUT, CIFAR10, str(tmp_path / "elsewhere"))
    assert len(problems) == 1 and "does not exist" in problems[0].what
    assert "scripts/download/download.py --contents datasets --datasets cifar-10" in problems[0].fix
    for stem in ("test_svhn", "val_cifar10"):
        os.remove(data / "benchmark_imglist" / "cifar10" / f"{stem}.txt")
    problems = check_data(LAYOUT, CIFAR10, str(data))
    assert [p.what for p in problems] == [
        f"image list(s) missing in {data}: benchmark_imglist/cifar10/val_cifar10.txt, "
        "benchmark_imglist/cifar10/test_svhn.txt"]
    shutil.rmtree(data / "benchmark_imglist")
    problems = check_data(LAYOUT, CIFAR10, str(data))
    assert len(problems) == 1 and "benchmark_imglist is missing" in problems[0].what


def test_empty_dataset_folders_would_be_downloaded_by_openood(data):
    shutil.rmtree(data / "images_classic" / "svhn")
    (data / "images_classic" / "svhn").mkdir()  # empty: OpenOOD downloads into it
    problems = check_data(LAYOUT, CIFAR10, str(data))
    assert [p.what for p in problems] == [f"dataset folder(s) missing or empty in {data}, which OpenOOD "
                                          "would download: svhn"]  # its missing images are not repeated
    assert "--datasets svhn --dataset_mode dataset" in problems[0].fix
    shutil.rmtree(data / "images_classic" / "tin")
    problems = check_data(LAYOUT, CIFAR10, str(data))
    assert problems[0].what.endswith("download: tin, svhn")
    assert "--datasets cifar-10 --dataset_mode benchmark" in problems[0].fix


def test_last_image_of_a_list_is_checked(data):
    os.remove(data / "images_classic" / "tin" / "test_tin" / "1.png")
    problems = check_data(LAYOUT, CIFAR10, str(data))
    assert len(problems) == 1 and "test_tin/1.png is missing (last entry" in problems[0].what


def test_training_and_csid_images_only_when_used(data):
    os.remove(data / "images_classic" / "cifar10" / "train_cifar10" / "0.png")
    os.remove(data / "images_classic" / "cifar10c" / "test_cifar10c" / "0.png")
    assert check_data(LAYOUT, CIFAR10, str(data)) == []
    assert len(check_data(LAYOUT, CIFAR10, str(data), needs_train=True)) == 1
    assert len(check_data(LAYOUT, CIFAR10, str(data), fsood=True)) == 1


def test_empty_list(data):
    (data / "benchmark_imglist" / "cifar10" / "test_tin.txt").write_text("")
    problems = check_data(LAYOUT, CIFAR10, str(data))
    assert len(problems) == 1 and "is empty" in problems[0].what


def make_seed(root, name, checkpoint=True):
    folder = root / name
    folder.mkdir(parents=True)
    if checkpoint:
        (folder / "best.ckpt").write_bytes(b"weights")


def test_seed_folders_sorted_numerically(tmp_path):
    for name in ("s0", "s10", "s2"):
        make_seed(tmp_path, name)
    (tmp_path / "ood").mkdir()            # OpenOOD's output folder is not a seed
    (tmp_path / "scores").mkdir()         # nor anything else starting with s
    runs, problems = find_seed_runs(str(tmp_path), CIFAR10)
    assert problems == []
    assert [r.name for r in runs] == ["s0", "s2", "s10"]
    assert runs[1].checkpoint == os.path.join(str(tmp_path), "s2", "best.ckpt")
    runs, problems = find_seed_runs(str(tmp_path), CIFAR10, seeds=["s10", "s0"])
    assert [r.name for r in runs] == ["s0", "s10"] and problems == []


def test_seed_folder_problems(tmp_path):
    runs, problems = find_seed_runs(str(tmp_path / "missing"), CIFAR10)
    assert runs == [] and "does not exist" in problems[0].what
    assert "--checkpoints cifar10_res18_v1.5" in problems[0].fix
    runs, problems = find_seed_runs(str(tmp_path), CIFAR10)
    assert "no seed folders" in problems[0].what
    make_seed(tmp_path, "s0")
    make_seed(tmp_path, "s1", checkpoint=False)
    runs, problems = find_seed_runs(str(tmp_path), CIFAR10)
    assert [r.name for r in runs] == ["s0"]
    assert problems[0].what == f"checkpoint {tmp_path}/s1/best.ckpt is missing" and "--seeds" in problems[0].fix
    runs, problems = find_seed_runs(str(tmp_path), CIFAR10, seeds=["s0", "s7"])
    assert "s7" in problems[0].what and "found: s0, s1" in problems[0].what


def test_weight_runs(tmp_path):
    first, second = tmp_path / "a" / "resnet50.pth", tmp_path / "b" / "resnet50.pth"
    for path in (first, second):
        path.parent.mkdir()
        path.write_bytes(b"w")
    runs, problems = weight_runs([str(first), str(second), str(tmp_path / "none.pth")], "wget URL")
    assert [r.name for r in runs] == ["resnet50", "resnet50-1"]
    assert len(problems) == 1 and "none.pth does not exist" in problems[0].what and problems[0].fix == "wget URL"


def test_configs(tmp_path):
    folder = tmp_path / "configs" / "postprocessors"
    folder.mkdir(parents=True)
    (folder / "msp.yml").write_text("postprocessor: {name: msp}\n")
    problems = check_configs(str(tmp_path / "configs"), ["msp", "ebo", "gaia_a"], packaged=["gaia_z", "gaia_a"])
    assert [p.what for p in problems] == [f"postprocessor config {folder}/ebo.yml is missing"]
    assert "--config-root" in problems[0].fix
    problems = check_configs(str(tmp_path / "nowhere"), ["msp"], packaged=[])
    assert "does not exist" in problems[0].what
    assert check_configs(str(tmp_path / "nowhere"), ["gaia_a"], packaged=["gaia_a"]) == []


def test_config_contents_are_checked_by_the_given_check():
    def check(method, path):
        if method == "gaia_a":
            raise ValueError("gaia_a: unknown postprocessor_args ['layer']")

    problems = check_config_files({"msp": "configs/postprocessors/msp.yml",
                                   "gaia_a": "configs/postprocessors/gaia_a.yml"}, check)
    assert [p.what for p in problems] == [
        "config configs/postprocessors/gaia_a.yml of 'gaia_a' is not usable: gaia_a: unknown postprocessor_args ['layer']"]


def test_methods():
    problems = check_methods(["msp", "gaia_z", "knnn", "godin"], ["msp", "knn", "gaia_z", "godin"])
    assert len(problems) == 2
    assert "unknown postprocessor 'knnn' (did you mean knn" in problems[0].what
    assert "needs a network of its own" in problems[1].what


def test_error_lists_every_problem_with_its_fix(tmp_path):
    _, problems = find_seed_runs(str(tmp_path / "x"), CIFAR10)
    problems += check_methods(["nope"], ["msp"])
    error = PreflightError(problems)
    text = str(error)
    assert text.startswith("cannot start, nothing was evaluated or downloaded:")
    assert text.count("  - ") == 2 and text.count("    fix: ") == 2


@pytest.mark.parametrize("missing, expected", [
    ("openood", "pip install -e ./OpenOOD"),
    ("openood.evaluation_api", "came with OpenOOD v1.5"),
    ("faiss", "pip install faiss-cpu"),
    ("libmr", "--no-build-isolation libmr"),
    ("somelib", "pip install the module 'somelib'"),
])
def test_import_failures_name_the_fix(monkeypatch, missing, expected):
    import importlib

    def failing_import(name):
        raise ModuleNotFoundError(f"No module named '{missing}'", name=missing)

    monkeypatch.setattr(importlib, "import_module", failing_import)
    with pytest.raises(PreflightError, match=expected):
        require_openood()


class _Reads:
    def setup(self, net, id_loader_dict, ood_loader_dict):
        for batch in id_loader_dict["train"]:
            pass


class _Inherits(_Reads):
    pass


class _DoesNotRead:
    def setup(self, net, id_loader_dict, ood_loader_dict):
        return id_loader_dict["val"]


def test_reads_training_split_from_source():
    assert reads_training_split(_Reads) and reads_training_split(_Inherits)
    assert not reads_training_split(_DoesNotRead)
