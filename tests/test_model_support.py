"""Unusual models: what is supported scores exactly; what is not stops with a clear error."""
import copy

import pytest
import torch
import torchvision
from torch import nn

from gaia_openood import GAIAA, GAIAZ
from gaia_openood.models import cifar_resnet

from conftest import randomize_norm_layers
from naive_reference import naive_gaia_a, naive_gaia_z


def conv_net(norm, head="gap_linear", reuse=False):
    """A small 3-stage CNN with the given normalization factory and head."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), norm(8), nn.ReLU())
            self.stage1 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), norm(8), nn.ReLU())
            self.stage2 = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), norm(16), nn.ReLU())
            self.stage3 = nn.Sequential(nn.Conv2d(16, 16, 3, stride=2, padding=1), norm(16), nn.ReLU())
            if head == "gap_linear":
                self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5))
            elif head == "gap_mlp":
                self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 5))
            elif head == "max_linear":
                self.head = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(16, 5))
            elif head == "flatten_linear":
                self.head = nn.Sequential(nn.Flatten(), nn.Linear(16 * 4 * 4, 5))

        def forward(self, x):
            x = self.stage1(self.stem(x))
            if reuse:  # the same stage, twice
                x = self.stage1(x)
            return self.head(self.stage3(self.stage2(x)))

    torch.manual_seed(0)
    return randomize_norm_layers(Net()).eval()


def assert_matches_naive(model, x, **a_options):
    z = GAIAZ(model)
    torch.testing.assert_close(z.score(x).double(), naive_gaia_z(model, x, z.layers(x).hooked), rtol=1e-5, atol=0)
    a = GAIAA(model, **a_options)
    layers = a.layers(x)
    torch.testing.assert_close(a.score(x).double(), naive_gaia_a(model, x, layers.hooked, layers.output), rtol=1e-5, atol=0)


X = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(
    "norm",
    [
        lambda k: nn.GroupNorm(4, k),
        lambda k: torchvision.models.convnext.LayerNorm2d(k),
        lambda k: nn.InstanceNorm2d(k, affine=True),
    ],
    ids=["groupnorm", "layernorm2d", "instancenorm"],
)
def test_other_normalization_layers(norm):
    model = conv_net(norm)
    assert len(GAIAZ(model).layers(X).hooked) == 4
    assert_matches_naive(model, X)


@pytest.mark.parametrize("head", ["gap_mlp", "max_linear", "flatten_linear"])
def test_heads_other_than_gap_linear_use_autograd_and_agree(head):
    model = conv_net(nn.BatchNorm2d, head=head)
    assert_matches_naive(model, X)
    with pytest.raises(ValueError, match="output_gradient='closed_form' needs a head"):
        GAIAA(model, output_gradient="closed_form").score(X)


def test_reused_layers_count_each_call():
    model = conv_net(nn.BatchNorm2d, reuse=True)
    layers = GAIAZ(model).layers(X)
    assert layers.probe.layer("stage1.1").calls == 2
    assert_matches_naive(model, X)


def test_wrappers_and_data_parallel():
    inner = conv_net(nn.BatchNorm2d)
    expected_z, expected_a = GAIAZ(inner).score(X), GAIAA(inner).score(X)
    for wrapped in (nn.DataParallel(inner).eval(), nn.Sequential(inner).eval()):
        torch.testing.assert_close(GAIAZ(wrapped).score(X), expected_z, rtol=1e-6, atol=0)
        torch.testing.assert_close(GAIAA(wrapped).score(X), expected_a, rtol=1e-6, atol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_low_and_high_precision_weights_are_scored_in_float32(dtype):
    model = conv_net(nn.BatchNorm2d).to(dtype)
    reference = copy.deepcopy(model).float()  # the same (rounded) weights in float32
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for detector_class in (GAIAZ, GAIAA):
        got = detector_class(model).score(X)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, detector_class(reference).score(X), rtol=1e-6, atol=0)
    assert all(p.dtype == dtype for p in model.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_compiled_modules_are_scored_through_their_original():
    model = conv_net(nn.BatchNorm2d)
    compiled = torch.compile(model)
    assert GAIAZ(compiled).model is model


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_torchscript_is_rejected():
    with pytest.raises(TypeError, match="TorchScript models cannot be scored"):
        GAIAZ(torch.jit.script(cifar_resnet(20).eval()))


def test_batchnorm_without_running_statistics_is_rejected():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, track_running_stats=False), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="track_running_stats=False.*depend on the other samples"):
        GAIAZ(model)


class TupleOutput(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = cifar_resnet(20)

    def forward(self, x):
        return self.net(x), x.mean()


def test_models_returning_tuples_are_rejected():
    with pytest.raises(ValueError, match="returned tuple.*Wrap it"):
        GAIAA(TupleOutput().eval()).score(torch.randn(1, 3, 32, 32))


class DetachedFeatures(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.features(x).detach().mean(dim=(2, 3)))


def test_models_that_detach_their_features_are_rejected():
    with pytest.raises(RuntimeError, match="does not depend on any hooked layer"):
        GAIAZ(DetachedFeatures().eval()).score(torch.randn(2, 3, 8, 8))
