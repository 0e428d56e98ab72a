"""Tap the gradients that flow into chosen layer outputs, reduced as they arrive.

A :class:`GradientTaps` object hands out forward hooks. Each hook registers a tensor
hook on the layer's output the moment it is produced, so the gradient it later
receives is the one with respect to that output *before* any in-place operation that
follows (an in-place ReLU or residual ``+=``): PyTorch hands hooks registered before an
in-place change the gradient of the old version. The gradient is reduced to a (B, K)
tensor right away and freed, so no full-size gradient is ever kept.

Parameters do not require gradients while scoring (see
:func:`gaia_openood.model_state.scoring_mode`), so the first tapped output of a forward
pass has no autograd history. The hook turns it into a leaf that requires a gradient
(a *root*) and passes a copy downstream; the backward pass is then asked for the
gradients of the roots only, which stops it at the earliest tapped layer and never
computes a parameter gradient.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

__all__ = ["GradientTaps", "OutputKeeper"]

Reduction = Callable[[Tensor], Tensor]


class GradientTaps:
    """Forward hooks that tap, and reduce, the gradient reaching each call of some layers.

    Args:
        modules: ``{name: module}`` of the layers to tap.
        reduce: maps a (B, K, H, W) gradient to a (B, K) tensor.

    Use :meth:`hooks` with :func:`gaia_openood.hooks.forward_hooks` around the forward
    pass, then :meth:`check_fired`, :meth:`backward` and :meth:`collect`.
    """

    def __init__(self, modules: Dict[str, nn.Module], reduce: Reduction) -> None:
        self.modules = dict(modules)
        self.reduce = reduce
        self.roots: List[Tensor] = []
        self._slots: Dict[str, List[Optional[Tensor]]] = {name: [] for name in self.modules}
        self._channels: Dict[str, List[int]] = {name: [] for name in self.modules}

    def hooks(self) -> List[Tuple[nn.Module, Callable]]:
        return [(module, self._hook_for(name)) for name, module in self.modules.items()]

    def _hook_for(self, name: str) -> Callable:
        def hook(module: nn.Module, args: tuple, output: object) -> Optional[Tensor]:
            if not isinstance(output, Tensor) or output.dim() != 4:
                shape = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
                raise ValueError(
                    f"Layer '{name}' produced {shape}; GAIA hooks layers with (B, K, H, W) outputs."
                )
            if not torch.is_grad_enabled():
                raise RuntimeError(
                    f"Layer '{name}' ran with gradients disabled inside the model's forward "
                    "(torch.no_grad or inference_mode in the model code); GAIA needs the "
                    "gradient that reaches it."
                )
            replacement = None
            tapped = output
            if not output.requires_grad:
                root = output.detach().requires_grad_()
                self.roots.append(root)
                # downstream code may modify its input in place, which a leaf forbids
                tapped = replacement = root.clone()
            slots = self._slots[name]
            index = len(slots)
            slots.append(None)
            self._channels[name].append(output.shape[1])

            def on_grad(grad: Tensor) -> None:
                slots[index] = self.reduce(grad)

            tapped.register_hook(on_grad)
            return replacement

        return hook

    def check_fired(self, ran_hint: Sequence[str] = ()) -> None:
        """Raise if a tapped layer did not run in the forward pass."""
        missing = [name for name, slots in self._slots.items() if not slots]
        if missing:
            hint = f" Layers that ran in the probe pass: {', '.join(ran_hint[:20])}." if ran_hint else ""
            raise RuntimeError(
                f"Hooked layer(s) {missing} did not run in this forward pass, although they ran "
                f"when the layers were chosen; the model's control flow depends on the input.{hint}"
            )

    def backward(self, outputs: Tensor, grad_outputs: Optional[Tensor] = None) -> None:
        """Back-propagate ``outputs`` down to the roots; the tensor hooks collect the rest."""
        if not outputs.requires_grad:
            raise RuntimeError(
                "The scored output does not depend on any hooked layer through autograd; check "
                "that the hooked layers feed the logits and that the model does not detach "
                "its features."
            )
        torch.autograd.grad(
            outputs, self.roots, grad_outputs=grad_outputs, allow_unused=True, retain_graph=False
        )

    def collect(self, batch_size: int, device: torch.device) -> List[Tensor]:
        """The reduced gradients, one (B, K) tensor per call of each layer.

        A tapped output that received no gradient (it does not influence the scored output)
        contributes zeros, which is its gradient.
        """
        reduced = []
        for name, slots in self._slots.items():
            for value, channels in zip(slots, self._channels[name]):
                if value is None:
                    value = torch.zeros(batch_size, channels, device=device)
                reduced.append(value)
        return reduced


class OutputKeeper:
    """A forward hook that keeps the input and output of one module's single call."""

    def __init__(self, name: str, module: nn.Module) -> None:
        self.name = name
        self.module = module
        self.calls = 0
        self.input: Optional[object] = None
        self.output: Optional[object] = None

    def hook(self, module: nn.Module, args: tuple, output: object) -> None:
        self.calls += 1
        self.input = args[0] if args else None
        self.output = output
