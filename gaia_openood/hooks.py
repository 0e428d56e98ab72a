"""Forward hooks that cannot outlive the block that registered them."""
from __future__ import annotations

import contextlib
from typing import Callable, Iterable, Iterator, Tuple

from torch import nn

__all__ = ["forward_hooks"]

ForwardHook = Callable[[nn.Module, tuple, object], object]


@contextlib.contextmanager
def forward_hooks(pairs: Iterable[Tuple[nn.Module, ForwardHook]]) -> Iterator[None]:
    """Register each ``(module, hook)`` pair for the block; remove every one afterwards.

    Registration happens inside ``try`` so that hooks registered before a failure are
    removed too.
    """
    handles = []
    try:
        for module, hook in pairs:
            handles.append(module.register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()
