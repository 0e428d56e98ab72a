"""The cost floor: one forward and one backward per batch, a graph that starts at the first
hooked layer, no parameter gradient."""
import pytest
import torch

from gaia_openood import GAIAA, GAIAZ
from gaia_openood.models import ResNet18_32x32


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return ResNet18_32x32(num_classes=10).eval()


def count_calls(model, monkeypatch):
    calls = {"forward": 0, "backward": 0}

    def pre_hook(module, args):
        calls["forward"] += 1

    real_grad = torch.autograd.grad

    def counting_grad(*args, **kwargs):
        calls["backward"] += 1
        return real_grad(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", counting_grad)
    return calls, model.register_forward_pre_hook(pre_hook)


@pytest.mark.parametrize(
    "detector, backward_passes",
    [
        (lambda m: GAIAZ(m, micro_batch_size=None), 1),
        (lambda m: GAIAA(m, micro_batch_size=None), 1),
        (lambda m: GAIAA(m, micro_batch_size=None, output_gradient="autograd"), 2),
    ],
)
def test_one_forward_and_one_backward_per_batch(model, monkeypatch, detector, backward_passes):
    x = torch.randn(6, 3, 32, 32)
    scorer = detector(model)
    scorer.layers(x)  # the one-sample probe, once per input shape
    calls, handle = count_calls(model, monkeypatch)
    try:
        scorer.score(x)
    finally:
        handle.remove()
    assert calls == {"forward": 1, "backward": backward_passes}


def record_requires_grad(model, names):
    seen = {}
    handles = []
    for name in names:
        def hook(module, args, output, name=name):
            seen.setdefault(name, []).append(output.requires_grad)
        handles.append(model.get_submodule(name).register_forward_hook(hook))
    return seen, handles


@pytest.mark.parametrize(
    "detector, untracked, tracked",
    [
        (GAIAZ, ["conv1"], ["layer1.0.conv1", "layer4"]),             # graph from bn1 on
        (GAIAA, ["conv1", "layer2", "layer3.0.conv1"], ["layer3.0.conv2", "layer4"]),  # from layer3 on
    ],
)
def test_graph_starts_at_the_first_hooked_layer(model, detector, untracked, tracked):
    x = torch.randn(2, 3, 32, 32)
    scorer = detector(model)
    scorer.layers(x)
    seen, handles = record_requires_grad(model, untracked + tracked)
    try:
        scorer.score(x)
    finally:
        for handle in handles:
            handle.remove()
    assert {name: seen[name] for name in untracked} == {name: [False] for name in untracked}
    assert {name: seen[name] for name in tracked} == {name: [True] for name in tracked}
    assert all(p.grad is None for p in model.parameters())
