"""Classifier architectures by name, and checkpoint loading with clear errors.

Names: ``resnet20``, ``resnet32``, ``resnet44``, ``resnet56``, ``resnet110`` (CIFAR, option A),
``resnet18_32x32`` (OpenOOD's CIFAR backbone; OpenOOD's own class when OpenOOD is
installed), ``wrn40_2`` and ``torchvision:<name>`` for any torchvision classifier
(e.g. ``torchvision:resnet50``).
"""
from __future__ import annotations

import difflib
import os
from typing import Callable, Dict, Mapping, Union

import torch
from torch import nn

from .cifar_resnet import CifarResNet, cifar_resnet
from .resnet18_32x32 import ResNet18_32x32
from .wrn import WideResNet

__all__ = ["ARCHITECTURES", "build_model", "load_checkpoint", "architecture_names", "CifarResNet", "ResNet18_32x32", "WideResNet"]


def _resnet18_32x32(num_classes: int) -> nn.Module:
    try:
        from openood.networks import ResNet18_32x32 as OpenOODResNet18  # type: ignore
    except Exception:  # OpenOOD absent or unimportable: ours has the same keys
        return ResNet18_32x32(num_classes=num_classes)
    return OpenOODResNet18(num_classes=num_classes)


ARCHITECTURES: Dict[str, Callable[[int], nn.Module]] = {
    **{f"resnet{depth}": (lambda n, d=depth: cifar_resnet(d, n)) for depth in (20, 32, 44, 56, 110)},
    "resnet18_32x32": _resnet18_32x32,
    "wrn40_2": lambda n: WideResNet(40, 2, n),
}


def architecture_names() -> list:
    """The known names (``torchvision:<name>`` stands for every torchvision classifier)."""
    return sorted(ARCHITECTURES) + ["torchvision:<name>"]


def build_model(arch: str, num_classes: int = 10) -> nn.Module:
    """A freshly initialised model of architecture ``arch`` with ``num_classes`` outputs."""
    if arch.startswith("torchvision:"):
        import torchvision

        name = arch.split(":", 1)[1]
        available = torchvision.models.list_models(module=torchvision.models)
        if name not in available:
            close = difflib.get_close_matches(name, available, n=5)
            raise ValueError(f"torchvision has no classifier '{name}'. Close matches: {close}")
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    if arch not in ARCHITECTURES:
        close = difflib.get_close_matches(arch, list(ARCHITECTURES), n=3)
        raise ValueError(
            f"Unknown architecture '{arch}'."
            + (f" Did you mean {close}?" if close else "")
            + f" Known: {architecture_names()}"
        )
    return ARCHITECTURES[arch](num_classes)


def _state_dict_from(obj: object, path: str) -> Mapping[str, torch.Tensor]:
    if isinstance(obj, nn.Module):
        return obj.state_dict()
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model", "net"):
            if key in obj and isinstance(obj[key], Mapping):
                return obj[key]
        if all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
    raise ValueError(
        f"{path}: no state dict found (expected a state dict, or a dict with a 'state_dict' or "
        f"'model' entry); found {type(obj).__name__}"
    )


def load_checkpoint(model: nn.Module, path: Union[str, os.PathLike]) -> nn.Module:
    """Load a checkpoint into ``model`` strictly; ``module.`` prefixes (DataParallel) are dropped.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the missing,
    unexpected and mis-shaped keys when the checkpoint does not fit the architecture.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # older checkpoints pickle extra objects (e.g. numpy scalars)
        obj = torch.load(path, map_location="cpu", weights_only=False)
    state = dict(_state_dict_from(obj, path))
    if state and all(key.startswith("module.") for key in state):
        state = {key[len("module."):]: value for key, value in state.items()}
    own = model.state_dict()
    # checkpoints from before PyTorch 0.4.1 have no BatchNorm step counters; eval ignores them
    missing = sorted(k for k in set(own) - set(state) if not k.endswith("num_batches_tracked"))
    unexpected = sorted(set(state) - set(own))
    mis_shaped = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or mis_shaped:
        details = []
        if missing:
            details.append(f"missing keys {missing[:8]}{' ...' if len(missing) > 8 else ''}")
        if unexpected:
            details.append(f"unexpected keys {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}")
        if mis_shaped:
            shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in mis_shaped[:5]]
            details.append("shape mismatches " + "; ".join(shapes))
        raise ValueError(
            f"{path} does not fit {type(model).__name__}: " + "; ".join(details)
            + ". Check the architecture name and the number of classes."
        )
    model.load_state_dict(state, strict=False)
    return model
