"""The arithmetic of gaia_openood.scores, and both detectors on a tiny model computed by hand."""
import math

import pytest
import torch
from torch import nn

from gaia_openood import GAIAA, GAIAZ
from gaia_openood.scores import (
    gaia_a_abnormality,
    gaia_z_abnormality,
    nonzero_fraction,
    output_gradient_closed_form,
    spatial_mean,
)


def test_nonzero_fraction_counts_exact_zeros_per_channel():
    grad = torch.tensor([[[[0.0, 1e-30], [0.0, -2.0]], [[0.0, 0.0], [0.0, 0.0]]]])
    assert nonzero_fraction(grad).tolist() == [[0.5, 0.0]]


def test_spatial_mean():
    grad = torch.arange(8.0).view(1, 2, 2, 2)
    assert spatial_mean(grad).tolist() == [[1.5, 5.5]]


def test_gaia_z_abnormality_is_mean_square_over_all_channels():
    rho = [torch.tensor([[0.5, 1.0]]), torch.tensor([[0.0]])]
    assert gaia_z_abnormality(rho).item() == pytest.approx((0.25 + 1.0 + 0.0) / 3)


def test_gaia_a_abnormality_divides_by_output_component():
    w = [torch.tensor([[1.0, -3.0]]), torch.tensor([[2.0]])]
    g = torch.tensor([[0.5, -1.5, 1.0]])  # O^2 = mean |g| = 1
    assert gaia_a_abnormality(w, g).item() == pytest.approx((1 + 9 + 4) / 3)
    assert gaia_a_abnormality(w, 2 * g).item() == pytest.approx((1 + 9 + 4) / 6)


def test_closed_form_matches_autograd():
    torch.manual_seed(0)
    head = nn.Linear(5, 4)
    feature_map = torch.randn(3, 5, 2, 3, requires_grad=True)
    logits = head(feature_map.mean(dim=(2, 3)))
    (grad,) = torch.autograd.grad(torch.log_softmax(logits, 1).sum(), feature_map)
    expected = grad.mean(dim=(2, 3))
    got = output_gradient_closed_form(logits.detach(), head.weight.detach(), 6)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)


def test_empty_layer_lists_are_rejected():
    with pytest.raises(ValueError, match="at least one"):
        gaia_z_abnormality([])
    with pytest.raises(ValueError, match="at least one"):
        gaia_a_abnormality([], torch.ones(1, 2))


def tiny_model():
    """BN (identity) -> ReLU -> global average pool -> Linear(1 -> 2) with W = [[1], [-1]]."""
    bn = nn.BatchNorm2d(1, eps=0.0)
    head = nn.Linear(1, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        head.bias.zero_()
    return nn.Sequential(bn, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head).eval()


TINY_INPUT = torch.tensor([[[[1.0, -2.0], [3.0, 0.5]]]])  # three of four entries positive


def test_gaia_z_by_hand():
    # the top logit is y0 = mean(relu(x)); its gradient reaches the BN output where x > 0
    rho = 3 / 4
    assert GAIAZ(tiny_model()).score(TINY_INPUT).item() == pytest.approx(-(rho**2), rel=1e-6)


@pytest.mark.parametrize("output_gradient", ["auto", "closed_form", "autograd"])
def test_gaia_a_by_hand(output_gradient):
    m = (1.0 + 3.0 + 0.5) / 4                    # z = mean(relu(x)); logits (m, -m)
    p0 = 1 / (1 + math.exp(-2 * m))
    p1 = 1 - p0
    g = (1 * (1 - 2 * p0) + (-1) * (1 - 2 * p1)) / 4   # W^T (1 - C p) / (H W)
    w = (3 / 4) / 4                                   # mean over positions of relu'(x) / (H W)
    expected = -(w**2) / abs(g)
    detector = GAIAA(tiny_model(), output_gradient=output_gradient)
    assert detector.layers(TINY_INPUT).hooked == ("0",)
    assert detector.layers(TINY_INPUT).output == "1"
    assert detector.score(TINY_INPUT).item() == pytest.approx(expected, rel=1e-6)
