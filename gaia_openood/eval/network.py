"""One forward pass that gives what the logit- and feature-based methods need.

Most baselines read the logits (MSP, MaxLogit, Energy) or the penultimate feature, the
input of the linear head (KNN, ReAct, ASH, GradNorm). :class:`NetworkView` finds the head
from the model's structure (the ``nn.Linear`` whose output the model returns, as GAIA's
layer discovery does) and returns both from a single forward pass, so those methods share
it. :class:`Batch` computes that pass lazily, at most once per batch.
"""
from __future__ import annotations

import contextlib
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from ..hooks import forward_hooks
from ..layers import probe_model

__all__ = ["NetworkView", "Batch"]


class NetworkView:
    """A classifier seen as ``features -> head -> logits``.

    Args:
        model: a classifier in eval mode returning (B, C) logits.
        example: a (1, C, H, W) input on the model's device, used once to find the head.

    Attributes:
        head: the ``nn.Linear`` whose output is the logits, or None when the model has none
            (then :meth:`forward` returns no feature and feature-based methods are skipped).
        head_name: its module name ('' when there is none).
        input_shape: (C, H, W) of the inputs.
    """

    def __init__(self, model: nn.Module, example: Tensor) -> None:
        self.model = model
        self.input_shape = tuple(example.shape[1:])
        probe = probe_model(model, example)
        self.num_classes = probe.num_classes
        self.head_name = probe.head or ""
        self.head: Optional[nn.Linear] = model.get_submodule(probe.head) if probe.head else None

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        """(B, C) float32 logits and the (B, D) penultimate feature (None without a linear head)."""
        captured = {}

        def keep_input(module: nn.Module, args: tuple, output: object) -> None:
            captured["feature"] = args[0]

        hooks = forward_hooks([(self.head, keep_input)]) if self.head is not None else contextlib.nullcontext()
        with hooks:
            logits = self.model(x)
        feature = captured.get("feature")
        if feature is not None and feature.dim() != 2:
            feature = None
        return logits.float(), None if feature is None else feature.float()


class Batch:
    """One preprocessed batch and, computed on first use, its logits and penultimate feature.

    Attributes:
        x: (B, C, H, W) float32 input on the model's device.
    """

    def __init__(self, x: Tensor, view: NetworkView) -> None:
        self.x = x
        self._view = view
        self._outputs: Optional[Tuple[Tensor, Optional[Tensor]]] = None

    def _forward(self) -> Tuple[Tensor, Optional[Tensor]]:
        if self._outputs is None:
            self._outputs = self._view.forward(self.x)
        return self._outputs

    @property
    def logits(self) -> Tensor:
        """(B, num_classes) float32 logits."""
        return self._forward()[0]

    @property
    def feature(self) -> Tensor:
        """(B, D) float32 input of the linear head."""
        feature = self._forward()[1]
        if feature is None:
            raise RuntimeError("the model has no linear head whose input could be read as the penultimate feature")
        return feature
