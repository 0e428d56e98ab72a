"""Run OpenOOD's CUDA-only evaluator code on the device the user chose, for one block only.

OpenOOD's Evaluator, its scripts and most postprocessors call ``.cuda()`` on batches,
networks and buffers. :func:`openood_device` makes those calls land on the chosen device
for the duration of a ``with`` block and puts everything back afterwards, also when the
block raises:

* a CUDA device: nothing is patched; the block runs under ``torch.cuda.device(index)``, so
  ``.cuda()`` means the chosen GPU (``cuda:1`` included);
* any other device (CPU): ``torch.Tensor.cuda`` and ``torch.nn.Module.cuda`` become
  ``.to(device)``, a no-op for what is already there.

Code that creates CUDA tensors directly (``torch.ones(..., device='cuda')``,
``torch.cuda.FloatTensor``; a few OpenOOD postprocessors such as temp_scaling and
openmax) still needs a GPU.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, List, Optional, Tuple, Union

import torch
from torch import nn

__all__ = ["resolve_device", "openood_device", "needs_cuda_message"]

_MISSING = object()


def resolve_device(name: Optional[str] = None) -> torch.device:
    """``name`` as a torch device; None means CUDA when available, else CPU.

    Raises ValueError for an unknown name or for CUDA on a machine without it.
    """
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"--device {name!r} is not a torch device ({error}); use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def _patch(owner: type, name: str, replacement: Any, saved: List[Tuple[type, str, Any]]) -> None:
    saved.append((owner, name, owner.__dict__.get(name, _MISSING)))
    setattr(owner, name, replacement)


def _restore(saved: List[Tuple[type, str, Any]]) -> None:
    for owner, name, original in reversed(saved):
        if original is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, original)


@contextlib.contextmanager
def openood_device(device: Union[str, torch.device]) -> Iterator[torch.device]:
    """Within the block, OpenOOD's ``.cuda()`` calls mean ``device``; undone on exit.

    Example:
        >>> with openood_device("cpu"):
        ...     torch.zeros(1).cuda().device.type
        'cpu'
    """
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        with torch.cuda.device(index):
            yield device
        return

    def tensor_to_device(self: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.to(device)

    def module_to_device(self: nn.Module, *args: Any, **kwargs: Any) -> nn.Module:
        return self.to(device)

    saved: List[Tuple[type, str, Any]] = []
    try:
        _patch(torch.Tensor, "cuda", tensor_to_device, saved)
        _patch(nn.Module, "cuda", module_to_device, saved)
        yield device
    finally:
        _restore(saved)


def needs_cuda_message(error: BaseException) -> Optional[str]:
    """A hint when ``error`` is PyTorch refusing CUDA work on a machine without CUDA."""
    text = str(error)
    markers = ("not compiled with CUDA", "NVIDIA driver", "CUDA driver", "no CUDA GPUs",
               "Found no NVIDIA", "torch.cuda", "CUDA is not available")
    if any(marker in text for marker in markers):
        return ("this postprocessor creates CUDA tensors itself (beyond the .cuda() calls the "
                "runner redirects), so it needs a CUDA device; run it with --device cuda on a GPU machine")
    return None
