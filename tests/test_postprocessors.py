"""The GAIA postprocessors without OpenOOD: configs, batches, errors before any work."""
import numpy as np
import pytest
import torch
import yaml

import gaia_openood
from gaia_openood import GAIAA, GAIAZ
from gaia_openood.models import cifar_resnet
from gaia_openood.openood import GAIAAPostprocessor, GAIAZPostprocessor, config_path, config_root


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return cifar_resnet(20).eval()


def loader(batches=3, size=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [{"data": torch.randn(size, 3, 32, 32, generator=g), "label": torch.arange(size)} for _ in range(batches)]


def test_packaged_configs_are_openood_format():
    for name in ("gaia_z", "gaia_a"):
        with open(config_path(name)) as handle:
            config = yaml.safe_load(handle)
        section = config["postprocessor"]
        assert section["name"] == name and section["APS_mode"] is False
        assert set(section["postprocessor_args"]) <= {"layers", "inner_layers", "output_layer", "output_gradient", "micro_batch_size"}
    assert config_root() == gaia_openood.config_root()


@pytest.mark.parametrize("post_class, detector_class", [(GAIAZPostprocessor, GAIAZ), (GAIAAPostprocessor, GAIAA)])
def test_inference_on_batch_dicts_matches_detector(net, post_class, detector_class):
    batches = loader()
    pred, conf, label = post_class().inference(net, batches, progress=False)
    expected_pred, expected = detector_class(net).predict(torch.cat([b["data"] for b in batches]))
    np.testing.assert_allclose(conf, expected.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(pred, expected_pred.numpy())
    np.testing.assert_array_equal(label, np.tile(np.arange(4), 3))
    assert post_class().postprocess(net, batches[0]["data"])[1].shape == (4,)


def test_hyperparameter_interface(net):
    post = GAIAZPostprocessor()
    assert post.APS_mode is False and post.hyperparam_search_done is True
    assert post.args_dict == {} and post.get_hyperparam() == []
    post.set_hyperparam([])
    with pytest.raises(ValueError, match="no hyperparameters"):
        post.set_hyperparam([90])


def test_args_reach_the_detector(net):
    config = {"postprocessor": {"name": "gaia_a", "APS_mode": False,
                                "postprocessor_args": {"inner_layers": "layer3.*", "micro_batch_size": 2}}}
    post = GAIAAPostprocessor(config)
    detector = post.detector(net)
    assert detector.micro_batch_size == 2
    assert all(name.startswith("layer3") for name in detector.layers(torch.zeros(1, 3, 32, 32)).hooked)
    assert post.detector(net) is detector  # built once per network


@pytest.mark.parametrize(
    "section, message",
    [
        ({"name": "gaia_z", "postprocessor_args": {"percentile": 90}}, "unknown postprocessor_args \\['percentile'\\]; known"),
        ({"name": "gaia_z", "APS_mode": True}, "no hyperparameters to search"),
        ({"name": "gaia_z", "postprocessor_sweep": {"x_list": [1]}}, "no hyperparameters to search"),
        ({"name": "gaia_a"}, "config for postprocessor 'gaia_a'"),
        ({"name": "gaia_z", "postprocessor_args": {"micro_batch_size": 0}}, "micro_batch_size must be 'auto', None or a positive int"),
        ({"name": "gaia_z", "postprocessor_args": {"layers": 0}}, "at least 1"),
        ({"name": "gaia_z", "postprocessor_args": [1]}, "must be a mapping"),
    ],
)
def test_bad_configs_fail_at_construction(section, message):
    with pytest.raises((ValueError, TypeError), match=message):
        GAIAZPostprocessor({"postprocessor": section})


def test_bad_output_gradient_fails_at_construction():
    with pytest.raises(ValueError, match="output_gradient must be one of"):
        GAIAAPostprocessor({"postprocessor": {"name": "gaia_a", "postprocessor_args": {"output_gradient": "fast"}}})


def test_missing_and_malformed_yaml(tmp_path):
    with pytest.raises(ValueError, match="no 'postprocessor' section"):
        GAIAZPostprocessor({"dataset": {"name": "cifar10"}})
    broken = tmp_path / "gaia_z.yml"
    broken.write_text("postprocessor:\n  name: gaia_z\n   APS_mode: [\n")
    with pytest.raises(ValueError, match="gaia_z.yml is not valid YAML"):
        GAIAZPostprocessor(str(broken))
    with pytest.raises(FileNotFoundError):
        GAIAZPostprocessor(str(tmp_path / "absent.yml"))


def test_batches_without_data_and_empty_loaders_name_the_dataset(net):
    class Named(list):
        class dataset:
            name = "tin"

    with pytest.raises(KeyError, match="batch 0 of dataset 'tin': the batch dict has no 'data' key"):
        GAIAZPostprocessor().inference(net, Named([{"image": torch.zeros(1, 3, 32, 32)}]), progress=False)
    with pytest.raises(ValueError, match="dataset 'tin' yielded no batches"):
        GAIAZPostprocessor().inference(net, Named([]), progress=False)
    bad = Named(loader(2))
    bad[1]["data"][3, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="batch 1 of dataset 'tin': sample\\(s\\) \\[3\\] contain NaN"):
        GAIAAPostprocessor().inference(net, bad, progress=False)


def test_image_label_pairs_are_accepted(net):
    pairs = [(b["data"], b["label"]) for b in loader(2)]
    pred, conf, label = GAIAZPostprocessor().inference(net, pairs, progress=False)
    assert conf.shape == (8,)
