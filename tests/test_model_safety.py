"""Scoring leaves the caller's model exactly as it was, in every context it can be called from."""
import warnings

import pytest
import torch
import torchvision
from torch import nn

from gaia_openood import GAIAA, GAIAZ, TrainingModeWarning
from gaia_openood.models import ResNet18_32x32, cifar_resnet

from conftest import randomize_norm_layers

DETECTORS = [GAIAZ, GAIAA]


def snapshot(model):
    return {
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "training": {n: m.training for n, m in model.named_modules()},
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "grad": {n: p.grad for n, p in model.named_parameters()},
        "hooks": {
            n: (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
            for n, m in model.named_modules()
        },
        "inplace": {n: m.inplace for n, m in model.named_modules() if hasattr(m, "inplace")},
    }


def assert_unchanged(before, model):
    after = snapshot(model)
    for key in ("training", "requires_grad", "hooks", "inplace"):
        assert after[key] == before[key], key
    assert all(g is None for g in after["grad"].values())
    for name, value in before["state"].items():
        assert torch.equal(after["state"][name], value), name


@pytest.fixture
def resnet():
    return randomize_norm_layers(torchvision.models.resnet18(num_classes=10)).eval()


@pytest.mark.parametrize("detector_class", DETECTORS)
def test_model_unchanged_after_scoring(resnet, detector_class):
    resnet.layer1.requires_grad_(False)  # a partly frozen model keeps its mix
    before = snapshot(resnet)
    detector_class(resnet).score(torch.randn(3, 3, 64, 64))
    assert_unchanged(before, resnet)


class Exploding(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = cifar_resnet(20)
        self.armed = False

    def forward(self, x):
        if self.armed:
            raise RuntimeError("boom")
        return self.net(x)


@pytest.mark.parametrize("detector_class", DETECTORS)
def test_hooks_and_state_restored_when_forward_raises(detector_class):
    model = Exploding().train()
    detector = detector_class(model)
    x = torch.randn(2, 3, 32, 32)
    with pytest.warns(TrainingModeWarning):
        detector.score(x)  # layers chosen while the forward still works
    model.armed = True
    before = snapshot(model)
    with pytest.raises(RuntimeError, match="boom"), pytest.warns(TrainingModeWarning):
        detector.score(x)
    assert_unchanged(before, model)


@pytest.mark.parametrize("detector_class", DETECTORS)
def test_works_under_no_grad_and_inference_mode(resnet, detector_class):
    x = torch.randn(2, 3, 64, 64)
    expected = detector_class(resnet).score(x)
    with torch.no_grad():
        torch.testing.assert_close(detector_class(resnet).score(x), expected, rtol=1e-6, atol=0)
    with torch.inference_mode():
        x_inference = x.clone()
        got = detector_class(resnet).score(x_inference)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("detector_class", DETECTORS)
def test_float32_even_under_autocast(resnet, detector_class):
    x = torch.randn(2, 3, 64, 64)
    expected = detector_class(resnet).score(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = detector_class(resnet).score(x)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("detector_class", DETECTORS)
def test_training_mode_is_scored_in_eval_mode_with_a_warning(resnet, detector_class):
    x = torch.randn(3, 3, 64, 64)
    expected = detector_class(resnet).score(x)
    resnet.train()
    resnet.layer2.eval()  # a mixed state must come back as it was
    before = snapshot(resnet)
    with pytest.warns(TrainingModeWarning, match="call model.eval\\(\\)"):
        got = detector_class(resnet).score(x)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)
    assert_unchanged(before, resnet)  # running statistics untouched too


@pytest.mark.parametrize("detector_class", DETECTORS)
def test_eval_model_scores_without_warnings(resnet, detector_class):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        detector_class(resnet).score(torch.randn(1, 3, 64, 64))


@pytest.fixture(scope="module")
def batch128():
    torch.manual_seed(3)
    model = randomize_norm_layers(ResNet18_32x32(num_classes=10)).eval()
    return model, torch.randn(128, 3, 32, 32)


@pytest.mark.parametrize("detector_class", DETECTORS)
def test_scores_identical_for_batch_sizes_1_7_128(batch128, detector_class):
    model, x = batch128
    full = detector_class(model, micro_batch_size=None).score(x)  # one batch of 128
    ones = torch.cat([detector_class(model).score(x[i : i + 1]) for i in range(0, 128, 16)])
    sevens = detector_class(model, micro_batch_size=7).score(x)
    automatic = detector_class(model).score(x)
    torch.testing.assert_close(ones, full[::16], rtol=1e-5, atol=0)
    torch.testing.assert_close(sevens, full, rtol=1e-5, atol=0)
    torch.testing.assert_close(automatic, full, rtol=1e-5, atol=0)


def test_auto_micro_batches_on_cpu_bound_the_largest_hooked_map(batch128):
    model, x = batch128
    # GAIA-Z's largest map is bn1's 64 x 32 x 32 floats (256 KiB a sample): 32 samples = 8 MiB
    z = GAIAZ(model)
    assert z.chunk_size(x, z.layers(x)) == 32
    # GAIA-A's largest inner map is layer3's 256 x 8 x 8 (64 KiB a sample): the whole batch fits
    a = GAIAA(model)
    assert a.chunk_size(x, a.layers(x)) == 128
    assert GAIAZ(model, micro_batch_size=None).chunk_size(x, z.layers(x)) == 128
    assert GAIAZ(model, micro_batch_size=5).chunk_size(x, z.layers(x)) == 5
