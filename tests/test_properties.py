"""Invariants of both scores, as property tests."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from gaia_openood import GAIAA, GAIAZ, TrainingModeWarning

from conftest import randomize_norm_layers

DETECTORS = [GAIAZ, GAIAA]
PROPERTY = settings(max_examples=20, deadline=None, derandomize=True)


def small_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
        nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 6),
    )
    return randomize_norm_layers(net).eval()


NET = small_net()


def images(seed: int, count: int) -> torch.Tensor:
    return torch.randn(count, 3, 12, 12, generator=torch.Generator().manual_seed(seed))


def close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-5, atol=0)


@pytest.mark.parametrize("detector_class", DETECTORS)
@PROPERTY
@given(seed=st.integers(0, 2**31), data=st.data())
def test_score_does_not_depend_on_batch_order(detector_class, seed, data):
    x = images(seed, 6)
    perm = torch.tensor(data.draw(st.permutations(range(6))))
    close(detector_class(NET).score(x[perm]), detector_class(NET).score(x)[perm])


@pytest.mark.parametrize("detector_class", DETECTORS)
@PROPERTY
@given(seed=st.integers(0, 2**31), others=st.integers(0, 2**31), count=st.integers(1, 7))
def test_score_does_not_depend_on_other_samples(detector_class, seed, others, count):
    x = images(seed, 2)
    crowd = torch.cat([x, images(others, count)])
    close(detector_class(NET).score(crowd)[:2], detector_class(NET).score(x))


@pytest.mark.parametrize("detector_class", DETECTORS)
@PROPERTY
@given(seed=st.integers(0, 2**31), size=st.integers(1, 9), micro=st.integers(1, 9))
def test_score_does_not_depend_on_batch_or_micro_batch_size(detector_class, seed, size, micro):
    x = images(seed, 9)
    whole = detector_class(NET).score(x)
    close(detector_class(NET).score(x[:size]), whole[:size])
    close(detector_class(NET, micro_batch_size=micro).score(x), whole)


@pytest.mark.parametrize("detector_class", DETECTORS)
@PROPERTY
@given(seed=st.integers(0, 2**31), train=st.booleans(), frozen=st.booleans())
def test_scoring_never_changes_the_model(detector_class, seed, train, frozen):
    net = small_net().train(train)
    net[0].requires_grad_(not frozen)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    flags = [(m.training, len(m._forward_hooks), len(m._backward_hooks), getattr(m, "inplace", None)) for m in net.modules()]
    grads = [p.requires_grad for p in net.parameters()]
    with pytest.warns(TrainingModeWarning) if train else torch.no_grad():
        detector_class(net).score(images(seed, 3))
    assert [(m.training, len(m._forward_hooks), len(m._backward_hooks), getattr(m, "inplace", None)) for m in net.modules()] == flags
    assert [p.requires_grad for p in net.parameters()] == grads
    assert all(p.grad is None for p in net.parameters())
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())


@pytest.mark.parametrize("detector_class", DETECTORS)
@PROPERTY
@given(seed=st.integers(0, 2**31), shift=st.floats(-10, 10, allow_nan=False))
def test_adding_a_constant_to_every_class_bias_changes_nothing(detector_class, seed, shift):
    x = images(seed, 4)
    shifted = small_net()
    with torch.no_grad():
        shifted[-1].bias.add_(shift)
    close(detector_class(shifted).score(x), detector_class(NET).score(x))
