"""GAIA-Z and GAIA-A against the naive reference, on several architectures with random weights."""
import pytest
import torch
import torchvision

from gaia_openood import GAIAA, GAIAZ
from gaia_openood.models import ResNet18_32x32, WideResNet, cifar_resnet

from conftest import randomize_norm_layers
from naive_reference import naive_gaia_a, naive_gaia_z

ARCHITECTURES = {
    "resnet18_32x32": (lambda: ResNet18_32x32(num_classes=10), 32),
    "cifar_resnet20": (lambda: cifar_resnet(20, 10), 32),
    "torchvision_resnet18": (lambda: torchvision.models.resnet18(num_classes=10), 64),
    "torchvision_resnet50": (lambda: torchvision.models.resnet50(num_classes=10), 64),
    "wrn16_2": (lambda: WideResNet(16, 2, 10), 32),
}


def relative_difference(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float(((ours.double() - reference).abs() / reference.abs()).max())


@pytest.fixture(scope="module", params=sorted(ARCHITECTURES))
def setup(request):
    build, size = ARCHITECTURES[request.param]
    torch.manual_seed(1)
    model = randomize_norm_layers(build()).eval()
    x = torch.randn(3, 3, size, size)
    return request.param, model, x


def test_gaia_z_matches_naive_reference(setup):
    name, model, x = setup
    detector = GAIAZ(model)
    layers = detector.layers(x).hooked
    ours = detector.score(x)
    reference = naive_gaia_z(model, x, layers)
    assert relative_difference(ours, reference) <= 1e-5, (name, ours, reference)


@pytest.mark.parametrize("output_gradient", ["auto", "autograd"])
def test_gaia_a_matches_naive_reference(setup, output_gradient):
    name, model, x = setup
    detector = GAIAA(model, output_gradient=output_gradient)
    chosen = detector.layers(x)
    ours = detector.score(x)
    reference = naive_gaia_a(model, x, chosen.hooked, chosen.output)
    assert relative_difference(ours, reference) <= 1e-5, (name, ours, reference)


def test_in_place_relus_score_like_a_copy_without_them():
    model = randomize_norm_layers(torchvision.models.resnet18(num_classes=10)).eval()
    copy = torchvision.models.resnet18(num_classes=10)
    copy.load_state_dict(model.state_dict())
    copy.eval()
    for module in copy.modules():
        if isinstance(module, torch.nn.ReLU):
            module.inplace = False
    x = torch.randn(4, 3, 64, 64)
    torch.testing.assert_close(GAIAZ(model).score(x), GAIAZ(copy).score(x), rtol=1e-6, atol=0)
    torch.testing.assert_close(GAIAA(model).score(x), GAIAA(copy).score(x), rtol=1e-6, atol=0)
    assert all(m.inplace for m in model.modules() if isinstance(m, torch.nn.ReLU))
