"""The benchmark runner inside the real OpenOOD, on tiny fake benchmarks in OpenOOD's layout.

Marked ``openood``: runs wherever OpenOOD is importable, skipped elsewhere. Two seeds of
random ResNet18_32x32 checkpoints in ``results/<folder>/s{0,1}/best.ckpt``, two images per
list; the CSVs are compared with those of OpenOOD's own evaluation scripts when its
checkout (``scripts/``) is next to the installed package.
"""
import csv
import io
import os
import runpy
import shutil
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

openood_api = pytest.importorskip("openood.evaluation_api", reason="OpenOOD is not installed")

from gaia_openood import GAIAZ
from gaia_openood import cli
from gaia_openood.models import load_checkpoint
from gaia_openood.openood import GAIAZPostprocessor
from gaia_openood.runner import PreflightError, RunnerOptions, run_benchmark
from gaia_openood.runner.device import openood_device
from gaia_openood.runner.leaderboard import COLUMNS

from fake_openood import make_fake_benchmark, make_fake_checkpoints, make_fake_configs, make_fake_imagenet_weights

pytestmark = pytest.mark.openood

OPENOOD_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(sys.modules["openood"].__file__)))
IMAGES = 2  # per image list: enough for distinct seeds, cheap for ResNet18 on CPU
NEAR_FAR = ["cifar100", "tin", "nearood", "mnist", "svhn", "texture", "places365", "farood"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    base = tmp_path_factory.mktemp("openood")
    return SimpleNamespace(
        data=make_fake_benchmark(str(base / "data"), "cifar10", images_per_list=IMAGES),
        root=make_fake_checkpoints(str(base / "results"), "cifar10", seeds=2),
        configs=make_fake_configs(str(base / "configs")),
    )


def options(bench, output, **overrides):
    settings = dict(id_data="cifar10", postprocessors=["msp", "ebo", "gaia_z"], root=bench.root,
                    data_root=bench.data, config_root=bench.configs, output=str(output), batch_size=200,
                    num_workers=0, device="cpu", progress=False)
    settings.update(overrides)
    return RunnerOptions(**settings)


def run(opts):
    return run_benchmark(opts, console=io.StringIO())


@pytest.fixture(scope="module")
def report(bench, tmp_path_factory):
    return run(options(bench, tmp_path_factory.mktemp("out")))


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def cells(path):
    """{row: {column: cell}} of an OpenOOD CSV."""
    rows = read_csv(path)
    return {row[0]: dict(zip(rows[0][1:], row[1:])) for row in rows[1:]}


def run_openood_script(monkeypatch, checkout, script, argv):
    """Run a copy of one of OpenOOD's evaluation scripts in ``checkout`` (data/, configs/ there),
    with OpenOOD's .cuda() calls on CPU and its data loaders without worker processes."""
    source = os.path.join(OPENOOD_CHECKOUT, "scripts", script)
    if not os.path.isfile(source):
        pytest.skip(f"OpenOOD's {script} is not next to the installed package")
    os.makedirs(os.path.join(checkout, "scripts"), exist_ok=True)
    target = shutil.copy(source, os.path.join(checkout, "scripts", script))
    import openood.evaluation_api.datasets as datasets

    loader = datasets.DataLoader
    monkeypatch.setattr(datasets, "DataLoader", lambda *a, **k: loader(*a, **{**k, "num_workers": 0}))
    monkeypatch.setattr(sys, "argv", [target, *argv])
    monkeypatch.chdir(checkout)
    with openood_device("cpu"):
        runpy.run_path(target, run_name="__main__")


def test_csv_is_identical_to_openoods_eval_ood_script(bench, report, tmp_path, monkeypatch):
    checkout = tmp_path / "OpenOOD"
    root = checkout / "results" / os.path.basename(bench.root)
    for seed in ("s0", "s1"):
        (root / seed).mkdir(parents=True)
        os.symlink(os.path.join(bench.root, seed, "best.ckpt"), root / seed / "best.ckpt")
    os.symlink(bench.data, checkout / "data")
    os.symlink(bench.configs, checkout / "configs")
    run_openood_script(monkeypatch, str(checkout), "eval_ood.py",
                       ["--id-data", "cifar10", "--root", str(root), "--postprocessor", "msp", "--save-csv"])
    ours = os.path.join(report.plan.options.output, "ood", "msp.csv")
    with open(root / "ood" / "msp.csv", "rb") as theirs, open(ours, "rb") as mine:
        assert mine.read() == theirs.read()


def test_seed_aggregation_matches_openoods_evaluator_per_seed(bench, report):
    from openood.evaluation_api import Evaluator
    from openood.networks import ResNet18_32x32

    per_seed = []
    for seed in ("s0", "s1"):
        net = load_checkpoint(ResNet18_32x32(num_classes=10), os.path.join(bench.root, seed, "best.ckpt")).eval()
        with openood_device("cpu"):
            evaluator = Evaluator(net, "cifar10", data_root=bench.data, config_root=bench.configs,
                                  postprocessor=GAIAZPostprocessor(), batch_size=200, num_workers=0)
            per_seed.append(evaluator.eval_ood(progress=False))
    stacked = np.stack([frame.to_numpy() for frame in per_seed])
    mean, std = stacked.mean(axis=0), stacked.std(axis=0)
    table = cells(os.path.join(report.plan.options.output, "ood", "gaia_z.csv"))
    assert list(table) == NEAR_FAR
    for i, row in enumerate(NEAR_FAR):
        for j, column in enumerate(["FPR@95", "AUROC", "AUPR_IN", "AUPR_OUT", "ACC"]):
            assert table[row][column] == "{:.2f} \u00b1 {:.2f}".format(mean[i, j], std[i, j])
    assert std[:, 1].max() > 0  # the two seeds really differ


def test_leaderboard_files(report):
    output = report.plan.options.output
    rows = read_csv(os.path.join(output, "leaderboard", "cifar10.csv"))
    assert tuple(rows[0]) == COLUMNS
    assert [row[1] for row in rows[1:]] == ["MSP", "EBO", "GAIA-Z"]
    for row, method in zip(rows[1:], ["msp", "ebo", "gaia_z"]):
        table = cells(os.path.join(output, "ood", f"{method}.csv"))
        assert row[2:5] == [table["nearood"]["AUROC"], table["farood"]["AUROC"], table["nearood"]["ACC"]]
        assert row[0] == "CrossEntropy" and row[5:] == ["No", "ResNet18", "100 epochs"]
        assert " \u00b1 " in row[2]
        with open(os.path.join(output, "leaderboard", f"cifar10_{method}.csv"), "rb") as attached, \
                open(os.path.join(output, "ood", f"{method}.csv"), "rb") as original:
            assert attached.read() == original.read()


def test_summary_table(report):
    rows = read_csv(os.path.join(report.plan.options.output, "summary_ood.csv"))
    assert rows[0][:2] == ["Postprocessor", "AUROC cifar100"] and rows[0][-1] == "ACC"
    assert [row[0] for row in rows[1:]] == ["MSP", "EBO", "GAIA-Z"]
    markdown = open(os.path.join(report.plan.options.output, "summary_ood.md"), encoding="utf-8").read()
    assert "2 run(s): s0, s1" in markdown and "| GAIA-Z |" in markdown


def test_per_sample_scores(bench, report):
    folder = os.path.join(report.plan.options.output, "scores", "gaia_z", "s1")
    assert sorted(os.listdir(folder)) == sorted(
        ["id_cifar10.npz", "near_cifar100.npz", "near_tin.npz", "far_mnist.npz", "far_svhn.npz",
         "far_texture.npz", "far_places365.npz"])
    saved = np.load(os.path.join(folder, "id_cifar10.npz"))
    with open(os.path.join(bench.data, "benchmark_imglist", "cifar10", "test_cifar10.txt")) as handle:
        listed = [line.split() for line in handle]
    assert list(saved["image"]) == [name for name, _ in listed]
    assert list(saved["label"]) == [int(label) for _, label in listed]
    from openood.evaluation_api.datasets import get_id_ood_dataloader
    from openood.evaluation_api.preprocessor import get_default_preprocessor
    from openood.networks import ResNet18_32x32

    loaders = get_id_ood_dataloader("cifar10", bench.data, get_default_preprocessor("cifar10"),
                                    batch_size=200, num_workers=0)
    net = load_checkpoint(ResNet18_32x32(num_classes=10), os.path.join(bench.root, "s1", "best.ckpt")).eval()
    images = next(iter(loaders["id"]["test"]))["data"]
    np.testing.assert_allclose(saved["conf"], GAIAZ(net).score(images).numpy(), rtol=1e-5)
    near = np.load(os.path.join(folder, "near_tin.npz"))
    assert near["conf"].shape == (IMAGES,) and (near["label"] == -1).all()


def test_cache_reuse_and_invalidation(bench, report, tmp_path, monkeypatch):
    from openood.evaluation_api.evaluator import Evaluator
    from openood.networks import ResNet18_32x32
    from openood.postprocessors import BasePostprocessor

    # the module's run, moved: same checkpoint contents, configs and data, so its cache applies
    root, configs, output = tmp_path / "results", tmp_path / "configs", tmp_path / "out"
    shutil.copytree(bench.root, root)
    shutil.copytree(bench.configs, configs)
    shutil.copytree(report.plan.options.output, output)
    opts = dict(root=str(root), config_root=str(configs))
    assert os.path.isfile(output / "cache" / "ood" / "ebo" / "s0" / "postprocessor.pkl")  # APS done
    calls = []

    def spy(owner, name):
        original = getattr(owner, name)

        def recorded(self, *args, **kwargs):
            calls.append(name)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(owner, name, recorded)

    spy(BasePostprocessor, "inference")  # msp, ebo
    spy(GAIAZPostprocessor, "inference")
    spy(Evaluator, "hyperparam_search")  # ebo's APS

    def statuses(report):
        return {(job.method, job.run): (job.cache, job.reason) for job in report.jobs}

    csv_before = (output / "ood" / "gaia_z.csv").read_bytes()
    again = run(options(bench, output, **opts))
    assert {status for status, _ in statuses(again).values()} == {"hit"}
    assert calls == []  # no inference, and no hyperparameter search for ebo
    assert (output / "ood" / "gaia_z.csv").read_bytes() == csv_before

    torch.manual_seed(7)  # new weights for s1: its results are stale, s0's are not
    torch.save(ResNet18_32x32(num_classes=10).state_dict(), root / "s1" / "best.ckpt")
    changed = statuses(run(options(bench, output, postprocessors=["gaia_z"], **opts)))
    assert changed == {("gaia_z", "s0"): ("hit", ""), ("gaia_z", "s1"): ("stale", "changed: checkpoint")}
    assert "inference" in calls and (output / "ood" / "gaia_z.csv").read_bytes() != csv_before

    (configs / "postprocessors" / "gaia_z.yml").write_text(
        "postprocessor:\n  name: gaia_z\n  APS_mode: False\n  postprocessor_args:\n    micro_batch_size: 1\n")
    configured = statuses(run(options(bench, output, postprocessors=["msp", "gaia_z"], seeds=["s0"], **opts)))
    assert configured == {("msp", "s0"): ("hit", ""), ("gaia_z", "s0"): ("stale", "changed: config")}

    forced = statuses(run(options(bench, output, postprocessors=["msp"], seeds=["s0"], recompute=True, **opts)))
    assert forced == {("msp", "s0"): ("miss", "--recompute")}


def test_preflight_stops_before_any_work(tmp_path, monkeypatch):
    import openood.evaluation_api.datasets as datasets

    def no_download(*args, **kwargs):
        raise AssertionError("OpenOOD tried to download")

    monkeypatch.setattr(datasets.gdown, "download", no_download)
    data = make_fake_benchmark(str(tmp_path / "data"), "cifar10", images_per_list=2)
    shutil.rmtree(os.path.join(data, "images_classic", "svhn"))
    os.remove(os.path.join(data, "images_classic", "fake", "test_tin", "0.png"))
    configs = make_fake_configs(str(tmp_path / "configs"), names=["msp"])
    with open(os.path.join(configs, "postprocessors", "gaia_a.yml"), "w") as handle:
        handle.write("postprocessor:\n  name: gaia_a\n  APS_mode: False\n  postprocessor_args:\n    layer: all\n")
    root = tmp_path / "results"
    for seed in ("s0", "s1"):
        (root / seed).mkdir(parents=True)
    (root / "s0" / "best.ckpt").write_bytes(b"never read")
    opts = RunnerOptions("cifar10", ["msp", "ebo", "gaia_a", "knnn"], root=str(root), data_root=data,
                         config_root=configs, output=str(tmp_path / "out"), device="cpu", progress=False)
    with pytest.raises(PreflightError) as caught:
        run_benchmark(opts, console=io.StringIO())
    text = str(caught.value)
    for expected in ("missing or empty in " + data + ", which OpenOOD would download: svhn",
                     "--datasets svhn --dataset_mode dataset",
                     "fake/test_tin/0.png is missing", "postprocessors/ebo.yml is missing",
                     "s1/best.ckpt is missing", "unknown postprocessor 'knnn' (did you mean knn",
                     "postprocessors/gaia_a.yml of 'gaia_a' is not usable", "unknown postprocessor_args ['layer']"):
        assert expected in text
    assert len(caught.value.problems) == 6
    assert not (tmp_path / "out").exists()
    assert not os.path.exists(os.path.join(data, "images_classic", "svhn"))


def test_checkpoint_of_another_network_is_refused(bench, tmp_path, capsys):
    root = tmp_path / "results"
    (root / "s0").mkdir(parents=True)
    torch.save(torch.nn.Linear(2, 2).state_dict(), root / "s0" / "best.ckpt")
    code = cli.main(["openood-eval", "--id-data", "cifar10", "--root", str(root), "--data-root", bench.data,
                     "--config-root", bench.configs, "--postprocessors", "msp", "--device", "cpu",
                     "--output", str(tmp_path / "out"), "--no-progress"])
    assert code == 2
    error = capsys.readouterr().err
    assert "s0/best.ckpt cannot be loaded" in error and "does not fit" in error


def test_fsood(bench, tmp_path):
    report = run(options(bench, tmp_path / "out", postprocessors=["msp"], seeds=["s0"], fsood=True))
    output = tmp_path / "out"
    assert list(cells(output / "fsood" / "msp.csv")) == NEAR_FAR
    assert read_csv(output / "leaderboard" / "cifar10_fsood.csv")[1][1] == "MSP"
    assert (output / "scores" / "msp" / "s0" / "csid_cifar10c.npz").is_file()
    assert report.plan.runs[0].name == "s0" and len(report.plan.runs) == 1


def test_scope_is_undone_after_success_and_failure(bench, tmp_path, monkeypatch):
    import openood.evaluation_api.evaluator as evaluator_module

    setup, tensor_cuda, module_cuda = evaluator_module.data_setup, torch.Tensor.cuda, torch.nn.Module.cuda

    def broken(self, net, loader, progress=True):
        raise RuntimeError("boom")

    monkeypatch.setattr(GAIAZPostprocessor, "inference", broken)
    console = io.StringIO()
    report = run_benchmark(options(bench, tmp_path / "out", postprocessors=["gaia_z", "msp"], seeds=["s0"]),
                           console=console)
    assert not report.ok and list(report.failed) == ["gaia_z"] and "boom" in report.failed["gaia_z"]
    assert list(report.results) == ["msp"] and (tmp_path / "out" / "ood" / "msp.csv").is_file()
    assert not (tmp_path / "out" / "ood" / "gaia_z.csv").exists()
    assert "RuntimeError: boom" in open(tmp_path / "out" / "logs" / "ood_gaia_z_s0.log").read()
    assert "FAILED" in console.getvalue()
    assert torch.Tensor.cuda is tensor_cuda and "cuda" not in torch.Tensor.__dict__
    assert torch.nn.Module.cuda is module_cuda
    assert evaluator_module.data_setup is setup
    assert "gaia_z" not in openood_api.postprocessor.postprocessors


def test_imagenet_single_weights_match_openoods_imagenet_script(tmp_path, monkeypatch):
    data = make_fake_benchmark(str(tmp_path / "OpenOOD" / "data"), "imagenet", images_per_list=1, size=16)
    configs = make_fake_configs(str(tmp_path / "OpenOOD" / "configs"), names=["msp"])
    weights = make_fake_imagenet_weights(str(tmp_path / "OpenOOD" / "results" / "tv" / "resnet50-random.pth"))
    report = run(RunnerOptions("imagenet", ["msp"], ckpt_paths=[weights], data_root=data, config_root=configs,
                               output=str(tmp_path / "out"), batch_size=200, num_workers=0, device="cpu",
                               progress=False))
    assert [run.name for run in report.plan.runs] == ["resnet50-random"]
    ours = tmp_path / "out" / "ood" / "msp.csv"
    table = cells(ours)
    assert list(table) == ["ssb_hard", "ninco", "nearood", "inaturalist", "textures", "openimage_o", "farood"]
    assert all("\u00b1" not in cell for row in table.values() for cell in row.values())
    board = read_csv(tmp_path / "out" / "leaderboard" / "imagenet1k_ood.csv")
    assert board[1] == ["CrossEntropy", "MSP", table["nearood"]["AUROC"], table["farood"]["AUROC"],
                        table["nearood"]["ACC"], "No", "ResNet50", "torchvision ckpt"]
    run_openood_script(monkeypatch, str(tmp_path / "OpenOOD"), "eval_ood_imagenet.py",
                       ["--arch", "resnet50", "--ckpt-path", weights, "--postprocessor", "msp", "--save-csv"])
    with open(os.path.join(os.path.dirname(weights), "ood", "msp.csv"), "rb") as theirs:
        assert ours.read_bytes() == theirs.read()
