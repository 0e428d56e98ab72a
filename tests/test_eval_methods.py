"""The method registry and every method's confidence, checked against an independent computation.

Every confidence must be higher = more in-distribution, whatever the library's convention.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import randomize_norm_layers
from benchmark_folder import one_thread  # noqa: F401 (one_thread: autouse fixture)
from gaia_openood import GAIAA, GAIAZ
from gaia_openood.eval.benchmark import Benchmark, ImageSet
from gaia_openood.eval.methods import method_names, resolve_methods
from gaia_openood.eval.scoring import evaluate
from gaia_openood.models import cifar_resnet

STD = (0.5, 0.25, 0.2)


def make_benchmark(with_train=True, n_train=64):
    rng = np.random.default_rng(0)

    def images(n, shift=0.0):
        return (rng.normal(shift, 1.0, size=(n, 3, 8, 8))).astype(np.float32)

    return Benchmark(
        name="tiny",
        id_test=ImageSet("id", "id", images(20), np.arange(20) % 3),
        id_train=ImageSet("train", "train", images(n_train), np.arange(n_train) % 3) if with_train else None,
        ood=[ImageSet("near1", "near", images(12, 0.5)), ImageSet("far1", "far", images(10, 2.0))],
        mean=(0.0, 0.0, 0.0),
        std=STD,
    )


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return randomize_norm_layers(cifar_resnet(20, num_classes=3)).eval()


def run(model, methods, **kwargs):
    return evaluate(model, kwargs.pop("bench", None) or make_benchmark(), methods, device="cpu", batch_size=7,
                    backend="pytorch-ood", progress=False, **kwargs)


def inputs(bench, name):
    image_set = {s.name: s for s in bench.sets() + [bench.id_train]}[name]
    return bench.preprocess(image_set.x)


def features(model, x):
    kept = {}
    handle = model.linear.register_forward_hook(lambda m, args, out: kept.update(z=args[0]))
    with torch.no_grad():
        logits = model(x)
    handle.remove()
    return logits, kept["z"]


def test_resolve_methods_names_aliases_and_errors():
    assert resolve_methods(None) == method_names()
    assert method_names()[:2] == ["gaia_z", "gaia_a"]
    assert resolve_methods("GAIA-Z, ebo ,MaxLogit,max_logit,gaia_z") == ["gaia_z", "energy", "maxlogit"]
    with pytest.raises(ValueError) as error:
        resolve_methods("msp,mahalanobis")
    assert "mahalanobis" in str(error.value) and "gaia_z, gaia_a, msp" in str(error.value)
    with pytest.raises(ValueError, match="did you mean"):
        resolve_methods(["gaia_y"])
    with pytest.raises(ValueError, match="no method"):
        resolve_methods(" , ")


def test_logit_methods_are_higher_for_more_confident_inputs(model):
    bench = make_benchmark()
    result = run(model, "msp,maxlogit,energy", bench=bench)
    for name in ("id", "near1", "far1"):
        logits, _ = features(model, inputs(bench, name))
        conf = result.conf
        assert conf["msp"][name] == pytest.approx(logits.softmax(1).max(1).values.numpy(), abs=1e-6)
        assert conf["maxlogit"][name] == pytest.approx(logits.max(1).values.numpy(), abs=1e-5)
        assert conf["energy"][name] == pytest.approx(torch.logsumexp(logits, 1).numpy(), abs=1e-5)
        assert conf["msp"][name].dtype == np.float32


def test_gaia_methods_are_the_packages_detectors(model):
    bench = make_benchmark()
    result = run(model, "gaia_z,gaia_a", bench=bench)
    x = inputs(bench, "far1")
    assert result.conf["gaia_z"]["far1"] == pytest.approx(GAIAZ(model).score(x).numpy(), abs=1e-6)
    assert result.conf["gaia_a"]["far1"] == pytest.approx(GAIAA(model).score(x).numpy(), rel=1e-5)


def test_id_predictions_and_labels(model):
    bench = make_benchmark()
    result = run(model, "msp", bench=bench)
    logits, _ = features(model, inputs(bench, "id"))
    assert np.array_equal(result.id_pred, logits.argmax(1).numpy())
    assert np.array_equal(result.id_labels, bench.id_test.y)
    assert result.sets == [("id", "id", 20), ("near1", "near", 12), ("far1", "far", 10)]


def test_odin_perturbs_against_the_gradient_in_pixel_units(model):
    bench = make_benchmark()
    result = run(model, "odin", bench=bench)
    x = inputs(bench, "near1").requires_grad_()
    logits = model(x) / 1000.0
    loss = F.cross_entropy(logits, logits.argmax(1))
    (grad,) = torch.autograd.grad(loss, x)
    step = grad.sign() / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = (model(x.detach() - 0.0014 * step) / 1000.0).softmax(1).max(1).values
    assert result.conf["odin"]["near1"] == pytest.approx(expected.numpy(), abs=1e-6)


def test_gradnorm_is_the_l1_norm_of_the_head_weight_gradient(model):
    bench = make_benchmark()
    result = run(model, "gradnorm", bench=bench)
    expected = []
    for x in inputs(bench, "id"):
        model.zero_grad()
        loss = -F.log_softmax(model(x[None]), dim=1).mean()
        (grad,) = torch.autograd.grad(loss, model.linear.weight)
        expected.append(float(grad.abs().sum()))
    assert result.conf["gradnorm"]["id"] == pytest.approx(np.array(expected), rel=1e-4)


def test_react_ash_and_knn_use_id_training_features(model):
    bench = make_benchmark()
    result = run(model, "react,ash,knn", bench=bench)
    _, train_z = features(model, inputs(bench, "train"))
    _, z = features(model, inputs(bench, "far1"))
    head = model.linear

    threshold = np.percentile(train_z.numpy().ravel(), 90)
    with torch.no_grad():
        react = torch.logsumexp(head(z.clamp(max=float(threshold))), 1)
    assert result.conf["react"]["far1"] == pytest.approx(react.numpy(), abs=1e-5)
    assert any("ReAct" in note for note in result.notes)

    keep = z.shape[1] - int(np.round(z.shape[1] * 0.9))  # ASH-B at percentile 90
    top = z.topk(keep, dim=1)
    shaped = torch.zeros_like(z).scatter(1, top.indices, (z.sum(1, keepdim=True) / keep).expand(-1, keep))
    with torch.no_grad():
        ash = torch.logsumexp(head(shaped), 1)
    assert result.conf["ash"]["far1"] == pytest.approx(ash.numpy(), abs=1e-4)

    unit = lambda a: a / a.norm(dim=1, keepdim=True)  # noqa: E731
    distances = torch.cdist(unit(z), unit(train_z)).sort(dim=1).values[:, 49]
    assert result.conf["knn"]["far1"] == pytest.approx((-distances).numpy(), abs=1e-5)


def test_methods_that_cannot_run_are_skipped_with_the_reason(model):
    result = run(model, "msp,knn,react", bench=make_benchmark(with_train=False))
    assert [m.key for m in result.methods] == ["msp"]
    assert "ID training subset" in result.skipped["knn"] and "ID training subset" in result.skipped["react"]

    result = run(model, "msp,knn", bench=make_benchmark(n_train=20))
    assert "only 20" in result.skipped["knn"]

    no_head = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 3, 1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    ).eval()
    result = run(no_head, "msp,gradnorm,ash,knn")
    assert [m.key for m in result.methods] == ["msp"]
    assert all("nn.Linear" in result.skipped[key] for key in ("gradnorm", "ash", "knn"))


def test_model_with_too_few_outputs_is_refused(model):
    bench = make_benchmark()
    bench.classes = ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="outputs 3 logits"):
        run(model, "msp", bench=bench)
