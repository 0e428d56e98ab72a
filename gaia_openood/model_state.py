"""Put a caller's model into the state GAIA scores in, and give it back unchanged.

GAIA is defined on a classifier in eval mode whose samples do not interact. While
scoring, every module is in eval mode and no parameter requires a gradient (so the
autograd graph starts at the first hooked layer and no parameter gradient is ever
computed). Whatever was changed is restored when the block exits, also on errors.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Iterator, Optional

import torch
from torch import Tensor, nn

__all__ = [
    "scoring_mode",
    "model_device",
    "needs_float32_copy",
    "check_batch_independent",
    "float32_forward",
    "autocast_disabled",
    "TrainingModeWarning",
]


class TrainingModeWarning(UserWarning):
    """The model was in training mode; it was scored in eval mode and then restored."""


def model_device(model: nn.Module) -> Optional[torch.device]:
    """The device of the model's first parameter or buffer, or None for a stateless model."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return None


def needs_float32_copy(model: nn.Module) -> bool:
    """True when some floating-point parameter or buffer is not float32 (half, bfloat16, float64)."""
    tensors = list(model.parameters()) + list(model.buffers())
    return any(t.is_floating_point() and t.dtype != torch.float32 for t in tensors)


def check_batch_independent(model: nn.Module) -> None:
    """Refuse models whose eval-mode output for a sample depends on the rest of the batch.

    GAIA sums the scored output over the batch before differentiating; that is exact only
    when samples do not interact, which BatchNorm without running statistics breaks.
    """
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not module.track_running_stats:
            raise ValueError(
                f"BatchNorm layer '{name}' has track_running_stats=False, so even in eval mode "
                "it normalises with the statistics of the current batch and a sample's score "
                "would depend on the other samples. Use a model whose BatchNorm layers keep "
                "running statistics (the default), or replace them with GroupNorm."
            )


@contextlib.contextmanager
def scoring_mode(model: nn.Module, *, warn_if_training: bool = True) -> Iterator[None]:
    """Eval mode and frozen parameters for the duration of the block; the caller's state after.

    A model (or any submodule) left in training mode is scored in eval mode with a
    :class:`TrainingModeWarning` (unless ``warn_if_training`` is False), because
    training-mode BatchNorm would mix the samples of a batch and Dropout would make scores
    random.

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.Dropout())
        >>> with scoring_mode(net.eval()):
        ...     assert not net.training and not net[0].weight.requires_grad
        >>> net[0].weight.requires_grad
        True
    """
    training = [(module, module.training) for module in model.modules()]
    requires_grad = [(param, param.requires_grad) for param in model.parameters()]
    if warn_if_training and any(flag for _, flag in training):
        names = [name or "<root>" for name, module in model.named_modules() if module.training]
        warnings.warn(
            f"The model is in training mode ({len(names)} module(s), e.g. {names[:3]}). GAIA "
            "scores it in eval mode and restores training mode afterwards; call model.eval() "
            "before scoring to silence this warning.",
            TrainingModeWarning,
            stacklevel=3,
        )
    try:
        for module, _ in training:
            module.training = False
        for param, _ in requires_grad:
            param.requires_grad_(False)
        yield
    finally:
        for module, flag in training:
            module.training = flag
        for param, flag in requires_grad:
            param.requires_grad_(flag)


def autocast_disabled(device: torch.device) -> contextlib.AbstractContextManager:
    """A context in which autocast is off for ``device``'s type (a no-op where it has none)."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


def float32_forward(model: nn.Module, x: Tensor) -> object:
    """Run ``model(x)`` in float32 with autocast disabled, without modifying the model.

    GAIA-Z tests gradients for exact zeros, which half precision would add by underflow,
    so a model with half, bfloat16 or float64 weights runs on float32 copies of its
    parameters and buffers (``torch.func.functional_call``); the model itself is untouched.
    """
    if x.is_floating_point() and x.dtype != torch.float32:
        x = x.float()
    with autocast_disabled(x.device):
        if not needs_float32_copy(model):
            return model(x)
        tensors = {
            name: (t.detach().float() if t.is_floating_point() else t)
            for name, t in list(model.named_parameters()) + list(model.named_buffers())
        }
        return torch.func.functional_call(model, tensors, (x,))
