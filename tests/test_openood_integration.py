"""GAIA inside the real OpenOOD: the evaluator by name, instances passed directly, legacy factory.

Marked ``openood``: runs wherever OpenOOD is importable, skipped elsewhere.
"""
import numpy as np
import pytest
import torch

openood = pytest.importorskip("openood.evaluation_api", reason="OpenOOD is not installed")

import gaia_openood
from gaia_openood import GAIAA, GAIAZ
from gaia_openood.models import ResNet18_32x32
from gaia_openood.openood import GAIAAPostprocessor, GAIAZPostprocessor, register, unregister

from conftest import randomize_norm_layers
from fake_openood import make_fake_benchmark

pytestmark = pytest.mark.openood


@pytest.fixture
def cpu_cuda():
    """OpenOOD's evaluator calls .cuda() on batches: run it on CPU the way the README says."""
    from gaia_openood.runner import openood_device

    with openood_device("cuda" if torch.cuda.is_available() else "cpu"):
        yield


@pytest.fixture
def registered():
    register()
    yield
    unregister()


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory):
    return str(make_fake_benchmark(str(tmp_path_factory.mktemp("data")), "cifar10"))


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return randomize_norm_layers(ResNet18_32x32(num_classes=10)).eval()


def test_postprocessors_subclass_openood_base():
    from openood.postprocessors import BasePostprocessor

    assert gaia_openood.openood.openood_available()
    assert isinstance(GAIAZPostprocessor(), BasePostprocessor)
    assert isinstance(GAIAAPostprocessor(), BasePostprocessor)


@pytest.mark.parametrize("name, detector_class", [("gaia_z", GAIAZ), ("gaia_a", GAIAA)])
def test_evaluator_by_name_with_openood_config_root(tmp_path, benchmark, net, cpu_cuda, registered, name, detector_class):
    from openood.evaluation_api import Evaluator

    config_root = tmp_path / "configs"  # like OpenOOD's own folder: no GAIA YAML in it
    (config_root / "postprocessors").mkdir(parents=True)
    evaluator = Evaluator(net, "cifar10", data_root=benchmark, config_root=str(config_root),
                          postprocessor_name=name, batch_size=4, num_workers=0)
    assert type(evaluator.postprocessor).__name__.lower().startswith(name.replace("_", ""))
    metrics = evaluator.eval_ood(progress=False)
    assert list(metrics.index) == ["cifar100", "tin", "nearood", "mnist", "svhn", "texture", "places365", "farood"]
    assert list(metrics.columns) == ["FPR@95", "AUROC", "AUPR_IN", "AUPR_OUT", "ACC"]
    assert np.isfinite(metrics.values).all()
    # the conf OpenOOD recorded is our score of the same images
    batch = next(iter(evaluator.dataloader_dict["id"]["test"]))
    expected = detector_class(net).score(batch["data"]).numpy()
    recorded = evaluator.scores["id"]["test"][1][: len(expected)]
    np.testing.assert_allclose(recorded, expected, rtol=1e-5)
    assert not (config_root / "postprocessors" / f"{name}.yml").exists()


def test_instance_passed_directly(benchmark, net, cpu_cuda):
    from openood.evaluation_api import Evaluator

    evaluator = Evaluator(net, "cifar10", data_root=benchmark, config_root=gaia_openood.config_root(),
                          postprocessor=GAIAZPostprocessor(), batch_size=6, num_workers=0)
    metrics = evaluator.eval_ood(progress=False)
    assert np.isfinite(metrics.values).all()


def test_packaged_config_root_works_without_register(benchmark, net, cpu_cuda):
    from openood.evaluation_api import postprocessor as api

    assert "gaia_a" not in api.postprocessors
    register()
    try:
        built = api.get_postprocessor(gaia_openood.config_root(), "gaia_a", "cifar10")
        assert isinstance(built, GAIAAPostprocessor) and built.APS_mode is False
    finally:
        unregister()
    assert "gaia_a" not in api.postprocessors


def test_legacy_factory_builds_gaia_and_is_restored(registered):
    import openood.pipelines.test_ood_pipeline as pipeline
    import openood.postprocessors as legacy
    from openood.utils import Config

    config = Config(gaia_openood.config_path("gaia_z"))
    assert isinstance(pipeline.get_postprocessor(config), GAIAZPostprocessor)
    assert isinstance(legacy.get_postprocessor(config), GAIAZPostprocessor)
    msp = Config({"postprocessor": {"name": "msp", "APS_mode": False, "postprocessor_args": None}})
    assert type(legacy.get_postprocessor(msp)).__name__ == "BasePostprocessor"
    unregister()
    with pytest.raises(KeyError):
        pipeline.get_postprocessor(config)
    register()


def test_legacy_inference_is_device_agnostic(benchmark, net):
    from openood.evaluation_api.datasets import get_id_ood_dataloader
    from openood.evaluation_api.preprocessor import get_default_preprocessor

    loaders = get_id_ood_dataloader("cifar10", benchmark, get_default_preprocessor("cifar10"),
                                    batch_size=4, num_workers=0)
    pred, conf, label = GAIAAPostprocessor().inference(net, loaders["id"]["test"], progress=False)
    assert pred.shape == conf.shape == label.shape == (6,)
    assert conf.dtype == np.float32 and np.isfinite(conf).all()


def test_bad_names_and_yaml_fail_before_any_work(tmp_path, net, registered):
    from openood.evaluation_api import Evaluator
    from openood.evaluation_api import postprocessor as api

    with pytest.raises(ValueError, match="no postprocessor named 'gaia_x'. Known: .*'gaia_a'"):
        api.get_postprocessor(str(tmp_path), "gaia_x", "cifar10")
    (tmp_path / "postprocessors").mkdir()
    (tmp_path / "postprocessors" / "gaia_a.yml").write_text("postprocessor: [\n")
    with pytest.raises(ValueError, match="gaia_a.yml is not valid YAML"):
        Evaluator(net, "cifar10", data_root=str(tmp_path / "absent"), config_root=str(tmp_path), postprocessor_name="gaia_a")
    (tmp_path / "postprocessors" / "gaia_a.yml").write_text(
        "postprocessor:\n  name: gaia_a\n  APS_mode: False\n  postprocessor_args:\n    percentile: 90\n")
    with pytest.raises(ValueError, match="unknown postprocessor_args \\['percentile'\\]"):
        Evaluator(net, "cifar10", data_root=str(tmp_path / "absent"), config_root=str(tmp_path), postprocessor_name="gaia_a")
    with pytest.raises(ValueError, match="not supported"):
        Evaluator(net, "cifar11", data_root=str(tmp_path / "absent"), config_root=str(tmp_path), postprocessor_name="gaia_a")
    assert not (tmp_path / "absent").exists()  # nothing was downloaded or created
