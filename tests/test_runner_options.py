"""The runner's flags: consistency checks and the two entry points, without OpenOOD."""
import importlib
import os
import subprocess
import sys

import pytest

from gaia_openood import cli
from gaia_openood.runner.benchmarks import BENCHMARKS, display_name
from gaia_openood.runner.options import RunnerOptions

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("kwargs, message", [
    ({"id_data": "cifar10"}, "needs --root"),
    ({"id_data": "cifar10", "root": "r", "ckpt_paths": ["w.pth"]}, "--ckpt-path is for --id-data imagenet"),
    ({"id_data": "cifar100", "root": "r", "arch": "resnet50"}, "--arch is for --id-data imagenet"),
    ({"id_data": "imagenet"}, "needs --ckpt-path"),
    ({"id_data": "imagenet", "ckpt_paths": ["w.pth"], "root": "r"}, "for imagenet pass --ckpt-path"),
    ({"id_data": "imagenet", "ckpt_paths": ["w.pth"], "arch": "resnet5"}, "Did you mean"),
    ({"id_data": "cifar", "root": "r"}, "unknown ID dataset 'cifar'"),
    ({"id_data": "cifar10", "root": "r", "batch_size": 0}, "--batch-size"),
    ({"id_data": "cifar10", "root": "r", "postprocessors": []}, "at least one"),
])
def test_inconsistent_flags_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RunnerOptions(**kwargs).validate()


def test_defaults_filled_by_validate():
    options = RunnerOptions("imagenet", ["gaia_a", "msp", "gaia_a"], ckpt_paths=["w.pth"])
    spec = options.validate()
    assert spec is BENCHMARKS["imagenet"] and options.arch == "resnet50"
    assert options.methods == ["gaia_a", "msp"]
    assert options.output == os.path.join("runs", "openood", "imagenet") and options.task == "ood"


def test_leaderboard_names_and_files():
    assert [display_name(m) for m in ("msp", "gaia_z", "gaia_a", "react", "newmethod")] == [
        "MSP", "GAIA-Z", "GAIA-A", "ReAct", "newmethod"]
    assert BENCHMARKS["cifar10"].leaderboard_file(fsood=False) == "cifar10.csv"
    assert BENCHMARKS["imagenet200"].leaderboard_file(fsood=False) == "imagenet200_ood.csv"
    assert BENCHMARKS["imagenet"].leaderboard_file(fsood=True) == "imagenet1k_fsood.csv"


def test_cli_subcommand_parses_openoods_flags():
    args = cli.build_parser().parse_args([
        "openood-eval", "--id-data", "cifar10", "--root", "results/x", "--postprocessor", "msp", "gaia_a",
        "--batch-size", "64", "--device", "cpu", "--no-cache"])
    assert args.postprocessors == ["msp", "gaia_a"] and args.batch_size == 64 and args.no_cache


def test_cli_stops_with_the_install_hint_when_openood_is_missing(monkeypatch, tmp_path, capsys):
    def no_openood(name):
        raise ModuleNotFoundError("No module named 'openood'", name="openood")

    monkeypatch.setattr(importlib, "import_module", no_openood)
    code = cli.main(["openood-eval", "--id-data", "cifar10", "--root", str(tmp_path), "--output", str(tmp_path / "out")])
    assert code == 2
    assert "OpenOOD is not installed" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_refuses_inconsistent_flags(capsys):
    assert cli.main(["openood-eval", "--id-data", "imagenet"]) == 2
    assert "needs --ckpt-path" in capsys.readouterr().err


def test_script_is_a_thin_entry_point():
    done = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "eval_ood.py"), "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--id-data" in done.stdout and "--ckpt-path" in done.stdout
