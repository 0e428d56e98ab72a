"""Cross-checks against OpenOOD itself. Marked ``openood``: they run wherever OpenOOD is
importable and are skipped elsewhere (OpenOOD is not on PyPI and not a dependency)."""
import numpy as np
import pytest
import torch

from benchmark_folder import one_thread  # noqa: F401 (one_thread: autouse fixture)
from conftest import randomize_norm_layers
from gaia_openood.eval.metrics import ood_metrics

openood_metrics = pytest.importorskip("openood.evaluators.metrics", reason="OpenOOD is not installed")
pytestmark = pytest.mark.openood


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_openoods_compute_all_metrics(seed):
    rng = np.random.default_rng(seed)
    conf_id = rng.integers(0, 30, 200).astype(np.float64) / 10  # ties within and across the sets
    conf_ood = rng.integers(-10, 25, 150).astype(np.float64) / 10
    conf = np.concatenate([conf_id, conf_ood])
    label = np.concatenate([np.zeros(conf_id.size, int), -np.ones(conf_ood.size, int)])
    fpr, auroc, aupr_in, aupr_out, _ = openood_metrics.compute_all_metrics(conf, label, np.zeros_like(label))
    ours = ood_metrics(conf_id, conf_ood, "main")
    assert ours.as_dict() == pytest.approx({"fpr95": fpr, "auroc": auroc, "aupr_in": aupr_in, "aupr_out": aupr_out})


def test_openood_baselines_match_pytorch_ood():
    pytest.importorskip("openood.postprocessors")
    from test_eval_methods import make_benchmark

    from gaia_openood.eval.scoring import evaluate
    from gaia_openood.models import cifar_resnet

    torch.manual_seed(0)
    model = randomize_norm_layers(cifar_resnet(20, num_classes=3)).eval()
    methods = "msp,maxlogit,energy,odin,gradnorm,react,ash,knn"
    results = [
        evaluate(model, make_benchmark(), methods, device="cpu", backend=backend, progress=False)
        for backend in ("openood", "pytorch-ood")
    ]
    assert [m.source for m in results[0].methods] == ["OpenOOD"] * 8
    for key in results[1].conf:
        for name, values in results[1].conf[key].items():
            # same rankings, other scales: OpenOOD's GradNorm sums the cross-entropy to uniform
            # over the 3 classes where pytorch-ood averages it; OpenOOD's KNN distance is squared
            # (faiss IndexFlatL2). ReAct: float32 vs float64 percentile.
            expected = {"gradnorm": 3 * values, "knn": -(values**2)}.get(key, values)
            assert results[0].conf[key][name] == pytest.approx(expected, rel=1e-4, abs=1e-5), (key, name)
