"""The arithmetic of GAIA-Z and GAIA-A: pure tensor -> tensor functions.

Nothing here touches a model. The functions turn gradients (or their per-channel
reductions) into the raw abnormalities of the GAIA paper; the detectors negate
them so that, as everywhere in this package, a higher score means more
in-distribution.

Shapes: ``B`` samples, ``K`` channels of one layer, ``H x W`` its spatial size,
``C`` classes, ``D`` channels of the final feature map.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

__all__ = [
    "nonzero_fraction",
    "spatial_mean",
    "gaia_z_abnormality",
    "gaia_a_abnormality",
    "output_gradient_closed_form",
]


def nonzero_fraction(grad: Tensor) -> Tensor:
    """Fraction of the spatial entries of each channel that are not exactly zero.

    Args:
        grad: (B, K, H, W) gradient of one hooked layer.

    Returns:
        (B, K) float32 tensor ``rho`` of GAIA-Z, in [0, 1].

    Example:
        >>> g = torch.tensor([[[[0.0, 1.0], [0.0, -2.0]]]])
        >>> nonzero_fraction(g)
        tensor([[0.5000]])
    """
    height, width = grad.shape[-2:]
    return torch.count_nonzero(grad, dim=(-2, -1)).float() / float(height * width)


def spatial_mean(grad: Tensor) -> Tensor:
    """Spatial mean of each channel: the GradCAM channel weight.

    Args:
        grad: (B, K, H, W) gradient of one layer.

    Returns:
        (B, K) float32 tensor.
    """
    return grad.float().mean(dim=(-2, -1))


def gaia_z_abnormality(rho: Sequence[Tensor]) -> Tensor:
    """GAIA-Z raw abnormality: the mean of ``rho**2`` over every channel of every layer.

    Args:
        rho: one (B, K_l) tensor of non-zero fractions per hooked layer.

    Returns:
        (B,) tensor; larger means denser gradients, i.e. more abnormal.

    Example:
        >>> gaia_z_abnormality([torch.tensor([[0.5, 1.0]]), torch.tensor([[0.0]])])
        tensor([0.4167])
    """
    if len(rho) == 0:
        raise ValueError("GAIA-Z needs at least one hooked layer; none was given.")
    return torch.cat(list(rho), dim=1).pow(2).mean(dim=1)


def gaia_a_abnormality(inner_weights: Sequence[Tensor], output_weights: Tensor) -> Tensor:
    """GAIA-A raw abnormality: ``mean over inner channels of (|w| / O)**2``.

    ``O = sqrt(mean_k |g_k|)`` is the output component, so the expression equals
    ``mean(w**2) / mean(|g|)``.

    Args:
        inner_weights: one (B, K_l) tensor of channel-mean gradients ``w`` per inner layer.
        output_weights: (B, D) channel-mean gradients ``g`` of the final feature map.

    Returns:
        (B,) tensor; larger means more abnormal.

    Example:
        >>> w = [torch.tensor([[1.0, -3.0]])]
        >>> g = torch.tensor([[0.5, -1.5, 1.0]])   # O**2 = mean|g| = 1.0
        >>> gaia_a_abnormality(w, g)
        tensor([5.])
    """
    if len(inner_weights) == 0:
        raise ValueError("GAIA-A needs at least one inner layer; none was given.")
    inner = torch.cat(list(inner_weights), dim=1).pow(2).mean(dim=1)
    return inner / output_weights.abs().mean(dim=1)


def output_gradient_closed_form(logits: Tensor, weight: Tensor, spatial_size: int) -> Tensor:
    """Channel means ``g`` of d(sum_c log_softmax(y)_c)/dA_out without a backward pass.

    Valid when the head is global average pooling followed by one linear layer
    ``y = W z + b`` with ``z = mean_hw(A_out)``: then d(sum_c log_softmax)/dy = 1 - C p,
    dL/dz = (1 - C p) W, and every spatial entry of A_out receives dL/dz / (H W).

    Args:
        logits: (B, C) logits ``y``.
        weight: (C, D) weight ``W`` of the linear head.
        spatial_size: ``H * W`` of the final feature map.

    Returns:
        (B, D) float32 tensor ``g``.
    """
    logits = logits.float()
    num_classes = logits.shape[1]
    upstream = 1.0 - num_classes * torch.softmax(logits, dim=1)
    return upstream @ weight.float() / float(spatial_size)
