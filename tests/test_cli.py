"""The `gaia-openood layers`, `configs` and `openood-main` commands."""
import os

import pytest
import torch

from gaia_openood.cli import main
from gaia_openood.models import build_model


def test_layers_prints_the_table(capsys):
    assert main(["layers", "--arch", "resnet20"]) == 0
    out = capsys.readouterr().out
    assert "resnet20, input 3x32x32" in out
    assert "GAIA-Z: 19 layers, 688 channels" in out
    assert "GAIA-A: 12 inner layers, 576 channels; output layer: layer3" in out


def test_layers_takes_specs_and_checkpoints(tmp_path, capsys):
    path = tmp_path / "net.pt"
    torch.save({"state_dict": build_model("resnet20").state_dict()}, path)
    assert main(["layers", "--arch", "resnet20", "--checkpoint", str(path), "--inner-layers", "layer3.*",
                 "--z-layers", "1"]) == 0
    out = capsys.readouterr().out
    assert "GAIA-Z: 6 layers, 384 channels" in out and "GAIA-A: 6 inner layers, 384 channels" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["layers", "--arch", "resnet21"], "Unknown architecture 'resnet21'"),
        (["layers", "--arch", "resnet20", "--inner-layers", "layer3.0.bnx"], "Close matches"),
        (["layers", "--arch", "resnet20", "--checkpoint", "absent.pt"], "checkpoint not found"),
        (["layers", "--arch", "resnet20", "--input-size", "32", "32", "3"], "one or two numbers"),
        (["openood-main", "--main", "absent/main.py"], "absent/main.py not found"),
    ],
)
def test_errors_name_the_problem_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_configs_prints_the_config_root(capsys):
    assert main(["configs"]) == 0
    folder = capsys.readouterr().out.strip()
    assert os.path.isfile(os.path.join(folder, "postprocessors", "gaia_z.yml"))


@pytest.mark.openood
def test_openood_main_runs_main_py_with_gaia_registered(tmp_path, capsys):
    pytest.importorskip("openood.evaluation_api", reason="OpenOOD is not installed")
    from gaia_openood.openood import config_path, unregister

    script = tmp_path / "main.py"
    script.write_text(
        "import sys\n"
        "from openood.postprocessors import get_postprocessor\n"
        "from openood.utils import Config\n"
        "print('built', type(get_postprocessor(Config(sys.argv[2]))).__name__)\n"
    )
    try:
        assert main(["openood-main", "--main", str(script), "--", "--config", config_path("gaia_a")]) == 0
    finally:
        unregister()
    assert "built GAIAAPostprocessor" in capsys.readouterr().out
