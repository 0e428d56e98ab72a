"""Versions of installed distributions, for reports and fingerprints."""
from __future__ import annotations

import importlib.metadata

__all__ = ["installed_version"]


def installed_version(name: str, missing: str = "not installed") -> str:
    """The installed version of distribution ``name``, or ``missing`` when it is not installed."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return missing
