"""Fingerprints: what cached OpenOOD results depend on, so stale ones are never reused.

A fingerprint is a flat dict of JSON values (versions, digests, settings). Two runs may
share a cache entry only when their fingerprints are equal; :func:`changed_keys` says
what differs, for the message that explains a recomputation.

The code digest covers the source files a class is made of within the packages of
interest (OpenOOD's and this one): the modules defining the class and its bases, and every
module they import from those packages, followed transitively (``from .base import X``
and ``from pkg import X`` both lead to the module defining ``X``). Package ``__init__``
files are not followed, because OpenOOD's import every postprocessor; only modules already
imported are read, nothing is imported. Libraries (torch ...) count by their version.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import os
import sys
import types
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set

__all__ = [
    "DEFAULT_PACKAGES",
    "file_digest",
    "files_digest",
    "source_files",
    "code_digest",
    "changed_keys",
]

DEFAULT_PACKAGES = ("openood", "gaia_openood")
_CHUNK = 1 << 20
_digests: Dict[tuple, str] = {}


def file_digest(path: str) -> str:
    """SHA-256 of a file's bytes (remembered per path, size and modification time)."""
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(chunk)
        _digests[key] = digest.hexdigest()
    return _digests[key]


def files_digest(paths: Iterable[str]) -> str:
    """One SHA-256 over several files (names and contents, in the order given)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(os.path.basename(path).encode() + b"\0" + file_digest(path).encode() + b"\0")
    return digest.hexdigest()


def _module_file(name: str) -> Optional[str]:
    module = sys.modules.get(name)
    if module is not None:
        path = getattr(module, "__file__", None)
    else:  # not imported: find it only when its parent is loaded, so nothing gets imported
        parent = name.rpartition(".")[0]
        if parent and parent not in sys.modules:
            return None
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            return None
        path = spec.origin if spec is not None else None
    if not path or not path.endswith(".py") or os.path.basename(path) == "__init__.py":
        return None  # built-ins, extensions and packages are not followed
    return path


def _absolute(module_name: str, is_package: bool, level: int, target: Optional[str]) -> str:
    if level == 0:
        return target or ""
    base = module_name.split(".") if is_package else module_name.split(".")[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join(base + ([target] if target else []))


def _imported_modules(module_name: str, path: str, packages: Set[str]) -> Set[str]:
    """Names of the modules whose code ``path`` uses, within ``packages`` (top-level names)."""
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), filename=path)
    is_package = os.path.basename(path) == "__init__.py"
    found: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module_name, is_package, node.level, node.module)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in sys.modules or _module_file(submodule):
                    found.add(submodule)
                    continue
                value = getattr(sys.modules.get(source), alias.name, None)
                defined_in = getattr(value, "__module__", None)
                found.add(defined_in if isinstance(defined_in, str) else source)
    return {name for name in found if name.split(".")[0] in packages}


def source_files(objects: Sequence[Any], packages: Iterable[str] = DEFAULT_PACKAGES,
                 stop: Iterable[str] = ()) -> List[str]:
    """The source files that ``objects`` (classes, functions, modules) are made of, sorted.

    Only modules of ``packages`` (top-level names) count; modules named in ``stop`` are
    included but their imports are not followed.
    """
    packages, stop = set(packages), set(stop)
    pending: List[str] = []
    for obj in objects:
        if isinstance(obj, types.ModuleType):
            pending.append(obj.__name__)
        else:
            for cls in (inspect.getmro(obj) if inspect.isclass(obj) else (obj,)):
                pending.append(getattr(cls, "__module__", "") or "")
    seen: Set[str] = set()
    files: Dict[str, str] = {}
    while pending:
        name = pending.pop()
        if name in seen or name.split(".")[0] not in packages:
            continue
        seen.add(name)
        path = _module_file(name)
        if path is None:
            continue
        files[name] = path
        if name not in stop:
            pending.extend(_imported_modules(name, path, packages))
    return sorted(files.values())


def code_digest(objects: Sequence[Any], packages: Iterable[str] = DEFAULT_PACKAGES,
                stop: Iterable[str] = ()) -> str:
    """SHA-256 over the source files of ``objects`` (see :func:`source_files`)."""
    digest = hashlib.sha256()
    for path in source_files(objects, packages, stop):
        with open(path, "rb") as handle:
            digest.update(hashlib.sha256(handle.read()).hexdigest().encode())
    return digest.hexdigest()


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> List[str]:
    """The keys whose values differ between two fingerprints (missing counts as different)."""
    return sorted(key for key in set(old) | set(new) if old.get(key) != new.get(key))
