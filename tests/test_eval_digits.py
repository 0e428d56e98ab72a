"""The embedded default benchmark (scikit-learn digits) and its deterministic, cached model."""
import dataclasses
import os

import numpy as np
import pytest
import torch

from benchmark_folder import one_thread  # noqa: F401 (one_thread: autouse fixture)
from gaia_openood.cli import main
from gaia_openood.eval.digits import CACHE_ENV, RECIPE, DigitsResNet, cache_dir, digits_benchmark, digits_model, train_digits_model

QUICK = dataclasses.replace(RECIPE, epochs=1)


@pytest.fixture(scope="module")
def bench():
    return digits_benchmark()


def test_default_benchmark_sets(bench):
    assert [(s.name, s.group) for s in bench.sets()] == [
        ("id", "id"), ("digits-8-9", "near"), ("photo-china", "far"), ("photo-flower", "far")
    ]
    assert len(bench.id_test) + len(bench.id_train) == 1443  # the digits 0-7 of load_digits
    assert len(bench.ood[0]) == 354 and len(bench.ood[1]) == len(bench.ood[2]) == 400
    assert bench.image_shape == (1, 8, 8) and bench.num_classes == 8
    assert set(np.unique(bench.id_test.y)) == set(range(8))
    for image_set in bench.sets():
        assert image_set.x.dtype == np.float32 and image_set.x.min() >= 0 and image_set.x.max() <= 1
    train = {row.tobytes() for row in bench.id_train.x}
    assert not any(row.tobytes() in train for row in bench.id_test.x)  # disjoint halves
    normalised = bench.preprocess(bench.id_train.x)
    assert float(normalised.mean()) == pytest.approx(0, abs=1e-5) and float(normalised.std()) == pytest.approx(1, abs=1e-2)
    again = digits_benchmark()
    assert all(np.array_equal(a.x, b.x) for a, b in zip(bench.sets(), again.sets()))


def test_training_is_deterministic_and_restores_global_state(bench):
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = train_digits_model(bench, QUICK, progress=False)
    assert torch.equal(torch.rand(1), expected_next)  # the caller's RNG stream is untouched
    assert not torch.are_deterministic_algorithms_enabled()
    second = train_digits_model(bench, QUICK, progress=False)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name
    assert not first.training


def test_model_is_cached_by_recipe(bench, tmp_path):
    model, info = digits_model(bench, QUICK, cache=str(tmp_path), progress=False)
    assert info["trained"] and os.path.dirname(info["path"]) == str(tmp_path)
    cached, info2 = digits_model(bench, QUICK, cache=str(tmp_path), progress=False)
    assert not info2["trained"] and info2["path"] == info["path"]
    x = bench.preprocess(bench.id_test.x[:5])
    with torch.no_grad():
        assert torch.equal(model(x), cached(x))
    other = dataclasses.replace(QUICK, seed=1)
    assert other.key() != QUICK.key()
    open(info["path"], "wb").write(b"damaged")
    with pytest.warns(UserWarning, match="unreadable cache file"):
        _, info3 = digits_model(bench, QUICK, cache=str(tmp_path), progress=False)
    assert info3["trained"]
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder should be")
    with pytest.warns(UserWarning, match="could not cache"):
        _, info4 = digits_model(bench, QUICK, cache=str(blocked), progress=False)
    assert info4["trained"] and info4["path"] == ""


def test_cache_location(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env"))
    assert cache_dir() == str(tmp_path / "env")
    assert cache_dir(str(tmp_path / "flag")) == str(tmp_path / "flag")
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == str(tmp_path / "xdg" / "gaia-openood")


def test_digits_resnet_shape():
    logits = DigitsResNet(8).eval()(torch.zeros(2, 1, 8, 8))
    assert logits.shape == (2, 8)


@pytest.mark.slow
def test_default_eval_runs_without_arguments(tmp_path, monkeypatch, capsys):
    """The README's main command, restricted to two methods to keep it short (trains the full recipe)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    assert main(["eval", "--methods", "gaia_z,msp", "--no-progress", "--no-plots"]) == 0
    text = capsys.readouterr().out
    assert "digits-8-9" in text and "photo-flower" in text and "ID accuracy of the classifier" in text
    assert os.path.isfile(tmp_path / "runs" / "digits" / "metrics.csv")
    accuracy = float(text.split("ID accuracy of the classifier: ")[1].split("%")[0])
    assert accuracy > 95
