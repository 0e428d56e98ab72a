"""Layer discovery from structure, layer specs, and the listing."""
import pytest
import torch
import torchvision
from torch import nn

from gaia_openood import GAIAA, GAIAZ, format_layer_table, list_layers, probe_model, select_layers, select_output_layer
from gaia_openood.models import ResNet18_32x32, WideResNet, cifar_resnet


def probe(model, size=32):
    return probe_model(model.eval(), torch.zeros(1, 3, size, size))


def bn_names(model, prefixes):
    return [n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d) and n.startswith(prefixes)]


def test_resnet34_gaia_z_hooks_36_layers_and_8512_channels():
    model = ResNet18_32x32(num_blocks=[3, 4, 6, 3])
    p = probe(model)
    chosen = select_layers(p, "auto", default="all")
    assert len(chosen) == 36
    assert sum(p.layer(n).channels for n in chosen) == 8512


def test_four_stage_resnet_inner_layers_are_layer3_and_layer4():
    model = ResNet18_32x32()
    p = probe(model)
    assert list(select_layers(p, "auto", default="two_smallest")) == bn_names(model, ("layer3", "layer4"))
    assert select_output_layer(p) == "layer4"
    assert p.head == "fc"


def test_three_stage_cifar_resnet_inner_layers_are_layer2_and_layer3():
    model = cifar_resnet(56)
    p = probe(model)
    assert list(select_layers(p, "auto", default="two_smallest")) == bn_names(model, ("layer2", "layer3"))
    assert select_output_layer(p) == "layer3"
    assert p.head == "linear"


def test_torchvision_resnet50_takes_whole_stages():
    model = torchvision.models.resnet50()
    p = probe(model, 64)
    inner = select_layers(p, "auto", default="two_smallest")
    assert list(inner) == bn_names(model, ("layer3", "layer4"))
    assert "layer3.0.bn1" in inner  # runs before the stride, at twice the resolution
    assert select_output_layer(p) == "layer4"


def test_wide_resnet_output_is_the_final_activation():
    model = WideResNet(16, 2)
    p = probe(model)
    assert select_output_layer(p) == "relu"
    inner = select_layers(p, "auto", default="two_smallest")
    assert list(inner) == bn_names(model, ("block2", "block3", "bn1"))
    assert len(select_layers(p, "all", default="two_smallest")) == len(bn_names(model, ("",)))


class Wrapper(nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, x):
        return self.backbone(x)


def test_wrappers_are_looked_through():
    inner = cifar_resnet(20)
    p = probe(Wrapper(inner))
    chosen = select_layers(p, "auto", default="two_smallest")
    assert list(chosen) == ["backbone." + n for n in bn_names(inner, ("layer2", "layer3"))]
    assert select_output_layer(p) == "backbone.layer3"


class ListNet(nn.Module):
    """Stages kept in a ModuleList that is iterated, never called."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv2d(4, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), nn.ReLU()) for _ in range(3)
        )
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.fc(x.mean(dim=(2, 3)))


def test_module_list_stages():
    p = probe(ListNet())
    assert select_layers(p, "auto", default="two_smallest") == ("stages.1.1", "stages.2.1")
    assert select_output_layer(p) == "stages.2"


def test_flat_sequential_ranks_each_layer_by_its_own_resolution():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3),
    )
    p = probe(model)
    assert select_layers(p, "auto", default="two_smallest") == ("4", "7")
    assert select_layers(p, 1, default="two_smallest") == ("7",)
    assert select_output_layer(p) == "8"
    assert p.head == "11"


def test_names_and_patterns():
    p = probe(cifar_resnet(20))
    assert select_layers(p, ["layer3.*.bn2", "bn1"], default="all") == ("bn1", "layer3.0.bn2", "layer3.1.bn2", "layer3.2.bn2")
    assert select_layers(p, "layer2.0.conv1", default="all") == ("layer2.0.conv1",)  # a name takes any 4-D module


@pytest.mark.parametrize(
    "spec, error, message",
    [
        ("layer3.0.bnx", ValueError, "Close matches: \\['layer3.0.bn2', 'layer3.0.bn1'"),
        ("layer9.*", ValueError, "matches no normalization layer"),
        ("linear", ValueError, "does not output a \\(B, K, H, W\\) feature map"),
        (0, ValueError, "at least 1"),
        (True, TypeError, "bool"),
        ([], TypeError, "non-empty"),
        ([3], TypeError, "layer spec"),
    ],
)
def test_bad_specs_name_the_problem(spec, error, message):
    p = probe(cifar_resnet(20))
    with pytest.raises(error, match=message):
        select_layers(p, spec, default="all")


class UnusedLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.spare = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).mean(dim=(2, 3)))


def test_layer_that_never_runs_lists_the_layers_that_did():
    with pytest.raises(ValueError, match="'spare' exists but never ran.*Layers that ran: conv, bn, fc"):
        GAIAZ(UnusedLayer().eval(), layers=["bn", "spare"]).score(torch.randn(2, 3, 8, 8))


def test_inner_layers_after_the_output_layer_are_rejected():
    with pytest.raises(ValueError, match="run after the output layer 'layer2'"):
        GAIAA(cifar_resnet(20).eval(), output_layer="layer2").score(torch.randn(1, 3, 32, 32))


def test_model_without_norm_layers_needs_explicit_layers():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match="no normalization layer"):
        GAIAZ(model).score(x)
    assert GAIAZ(model, layers=["0"]).score(x).shape == (2,)


def test_non_classifier_output_is_rejected():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
    with pytest.raises(ValueError, match="returns a \\(B, num_classes\\) logits tensor"):
        GAIAZ(model).score(torch.randn(1, 3, 8, 8))


def test_list_layers_and_table():
    rows = list_layers(cifar_resnet(20), (3, 32, 32))
    assert [r["name"] for r in rows if r["gaia_a"] == "output"] == ["layer3"]
    assert sum(r["channels"] for r in rows if r["gaia_z"]) == 16 * 7 + 32 * 6 + 64 * 6
    assert sum(r["channels"] for r in rows if r["gaia_a"] == "inner") == 32 * 6 + 64 * 6
    table = format_layer_table(rows)
    assert "GAIA-Z: 19 layers, 688 channels" in table
    assert "GAIA-A: 12 inner layers, 576 channels; output layer: layer3" in table
