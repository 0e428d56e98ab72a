"""``gaia-openood eval`` end to end on a tiny synthetic benchmark folder, and its error messages."""
import csv
import math
import os

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from benchmark_folder import one_thread, write_benchmark  # noqa: F401 (one_thread: autouse fixture)
from conftest import randomize_norm_layers
from gaia_openood.cli import main
from gaia_openood.models import cifar_resnet


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    folder = write_benchmark(root / "bench")
    torch.manual_seed(0)
    checkpoint = str(root / "resnet20.pt")
    torch.save({"state_dict": randomize_norm_layers(cifar_resnet(20, num_classes=3)).state_dict()}, checkpoint)
    return root, folder, checkpoint


@pytest.fixture(scope="module")
def outputs(setup):
    root, folder, checkpoint = setup
    out = str(root / "out")
    code = main(["eval", "--benchmark", folder, "--arch", "resnet20", "--checkpoint", checkpoint, "--out", out,
                 "--device", "cpu", "--batch-size", "10", "--no-progress", "--methods", "gaia_z,gaia_a,msp,energy,knn,react"])
    assert code == 0
    return out


def test_eval_writes_every_file(outputs):
    names = sorted(os.listdir(outputs))
    assert names == ["metrics.csv", "roc.png", "scores.npz", "scores.png", "summary.json", "table.md"]
    for png in ("roc.png", "scores.png"):
        with open(os.path.join(outputs, png), "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    table = open(os.path.join(outputs, "table.md")).read()
    for text in ("AUROC", "FPR@95", "AUPR-IN", "AUPR-OUT", "near-OOD", "far-OOD", "ID accuracy", "GAIA-Z", "KNN", "OpenOOD main"):
        assert text in table


def _auroc(conf_id, conf_ood):
    """Probability that an ID sample scores above an OOD one (ties count half)."""
    greater = (conf_id[:, None] > conf_ood[None, :]).mean()
    return greater + (conf_id[:, None] == conf_ood[None, :]).mean() / 2


def _fpr95(conf_id, conf_ood):
    """Fraction of ID samples at or below the lowest threshold flagging 95% of OOD (continuous scores)."""
    t = np.sort(conf_ood)[math.ceil(0.95 * conf_ood.size) - 1]
    return np.mean(conf_id <= t)


def test_csv_is_recomputable_from_scores_npz(outputs):
    scores = np.load(os.path.join(outputs, "scores.npz"))
    assert list(scores["methods"]) == ["gaia_z", "gaia_a", "msp", "energy", "knn", "react"]
    assert list(scores["sets"]) == ["id", "blur", "noise"] and list(scores["groups"]) == ["id", "near", "far"]
    accuracy = 100 * np.mean(scores["pred"] == scores["labels"])
    with open(os.path.join(outputs, "metrics.csv")) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 * 4  # per method: blur, nearood, noise, farood
    fpr_checked = 0
    for row in rows:
        conf_id = scores[f"conf/{row['method']}/id"]
        dataset = {"nearood": "blur", "farood": "noise"}.get(row["dataset"], row["dataset"])  # one set per group
        conf_ood = scores[f"conf/{row['method']}/{dataset}"]
        is_ood = np.r_[np.zeros(conf_id.size), np.ones(conf_ood.size)]
        conf = np.r_[conf_id, conf_ood]
        p_in, r_in, _ = skm.precision_recall_curve(1 - is_ood, conf)
        p_out, r_out, _ = skm.precision_recall_curve(is_ood, -conf)
        assert float(row["AUROC"]) == pytest.approx(100 * _auroc(conf_id, conf_ood), abs=1e-4)
        assert float(row["AUPR_IN"]) == pytest.approx(100 * skm.auc(r_in, p_in), abs=1e-4)
        assert float(row["AUPR_OUT"]) == pytest.approx(100 * skm.auc(r_out, p_out), abs=1e-4)
        if np.unique(conf).size == conf.size:
            assert float(row["FPR@95"]) == pytest.approx(100 * _fpr95(conf_id, conf_ood), abs=1e-4)
            fpr_checked += 1
        assert float(row["ACC"]) == pytest.approx(accuracy, abs=1e-4)
        assert int(row["n_id"]) == 24 and int(row["n_ood"]) == conf_ood.size
    assert fpr_checked >= 8


def test_errors_name_the_problem(setup, capsys, tmp_path):
    root, folder, checkpoint = setup
    base = ["eval", "--out", str(tmp_path), "--device", "cpu", "--no-progress", "--no-plots"]

    assert main(base + ["--benchmark", folder, "--arch", "resnet20", "--checkpoint", checkpoint, "--methods", "msp,foo"]) == 2
    error = capsys.readouterr().err
    assert "unknown method(s) ['foo']" in error and "gaia_z, gaia_a, msp, maxlogit" in error

    assert main(base + ["--benchmark", folder, "--arch", "resnet56", "--checkpoint", checkpoint]) == 2
    assert "does not fit" in capsys.readouterr().err

    assert main(base + ["--benchmark", folder, "--arch", "resnet20", "--checkpoint", checkpoint, "--num-classes", "10"]) == 2
    assert "shape mismatches" in capsys.readouterr().err

    assert main(base + ["--benchmark", folder, "--arch", "resnet21", "--checkpoint", checkpoint]) == 2
    assert "Unknown architecture 'resnet21'" in capsys.readouterr().err

    assert main(base + ["--benchmark", str(tmp_path / "missing"), "--arch", "resnet20", "--checkpoint", checkpoint]) == 2
    assert "benchmark not found" in capsys.readouterr().err

    assert main(base + ["--benchmark", folder, "--arch", "resnet20"]) == 2
    assert "--checkpoint" in capsys.readouterr().err

    assert main(base + ["--arch", "resnet20"]) == 2
    assert "--benchmark" in capsys.readouterr().err

    assert main(base + ["--device", "tpu9"]) == 2
    assert "not a torch device" in capsys.readouterr().err


def test_list_methods(capsys):
    assert main(["eval", "--list-methods"]) == 0
    listed = capsys.readouterr().out.split("\n")
    assert [line.split()[0] for line in listed if line][:3] == ["gaia_z", "gaia_a", "msp"]
