"""Reusable OpenOOD work, stored with the fingerprint it was computed under.

What OpenOOD's ``scripts/eval_ood.py`` pickles next to the checkpoints and reloads
unconditionally (the set-up postprocessor, the evaluator's scores) is kept here under
``<folder>/<method>/<run>/`` together with ``fingerprint.json``, and is handed back only
when the fingerprint of the new run is the same. Anything else (no entry, another
fingerprint, an unreadable file) is a miss, with the reason, and the entry is replaced
when the run saves.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

from .fingerprint import changed_keys

__all__ = ["CacheEntry", "Lookup", "ResultCache"]

_FINGERPRINT = "fingerprint.json"
_SCORES = "scores.pkl"
_POSTPROCESSOR = "postprocessor.pkl"


@dataclass
class Lookup:
    """The outcome of :meth:`ResultCache.load`.

    ``status`` is ``"hit"``, ``"miss"`` (nothing stored), ``"stale"`` (stored under another
    fingerprint; ``reason`` names what changed), ``"unreadable"`` or ``"off"``.
    """

    status: str
    reason: str = ""
    scores: Optional[Dict[str, Any]] = None
    postprocessor: Any = None

    @property
    def hit(self) -> bool:
        return self.status == "hit"


@dataclass
class CacheEntry:
    """Where one (method, run) pair is stored."""

    folder: str
    fingerprint: Mapping[str, Any] = field(default_factory=dict)


def _dump_atomic(path: str, write) -> None:
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


class ResultCache:
    """Fingerprinted pickles of OpenOOD's postprocessors and scores under ``folder``.

    ``enabled=False`` turns every load into ``"off"`` and every save into a no-op;
    ``refresh=True`` ignores what is stored but still saves (``--recompute``).
    """

    def __init__(self, folder: str, enabled: bool = True, refresh: bool = False) -> None:
        self.folder = folder
        self.enabled = enabled
        self.refresh = refresh

    def entry(self, method: str, run: str, fingerprint: Mapping[str, Any]) -> CacheEntry:
        return CacheEntry(os.path.join(self.folder, method, run), dict(fingerprint))

    def load(self, entry: CacheEntry) -> Lookup:
        """What is stored for ``entry`` if it was computed under the same fingerprint."""
        if not self.enabled:
            return Lookup("off", "caching disabled (--no-cache)")
        if self.refresh:
            return Lookup("miss", "--recompute")
        path = os.path.join(entry.folder, _FINGERPRINT)
        if not os.path.isfile(path):
            return Lookup("miss", "nothing cached")
        try:
            with open(path, encoding="utf-8") as handle:
                stored = json.load(handle)
        except (OSError, ValueError) as error:
            return Lookup("unreadable", f"{path}: {error}")
        changed = changed_keys(stored, entry.fingerprint)
        if changed:
            return Lookup("stale", "changed: " + ", ".join(changed))
        try:
            with open(os.path.join(entry.folder, _SCORES), "rb") as handle:
                scores = pickle.load(handle)
            postprocessor = None
            if os.path.isfile(os.path.join(entry.folder, _POSTPROCESSOR)):
                with open(os.path.join(entry.folder, _POSTPROCESSOR), "rb") as handle:
                    postprocessor = pickle.load(handle)
        except Exception as error:  # a truncated or incompatible pickle is a miss, not a crash
            return Lookup("unreadable", f"{entry.folder}: {type(error).__name__}: {error}")
        return Lookup("hit", "", scores, postprocessor)

    def save(self, entry: CacheEntry, scores: Mapping[str, Any], postprocessor: Any = None) -> Optional[str]:
        """Store ``scores`` (and ``postprocessor`` when given and picklable) under ``entry``.

        The fingerprint is written last, so an interrupted save leaves no valid entry.
        Returns a warning when the postprocessor could not be pickled, else None.
        """
        if not self.enabled:
            return None
        if os.path.isdir(entry.folder):
            shutil.rmtree(entry.folder)
        os.makedirs(entry.folder)
        warning = None
        _dump_atomic(os.path.join(entry.folder, _SCORES),
                     lambda stream: pickle.dump(dict(scores), stream, pickle.HIGHEST_PROTOCOL))
        if postprocessor is not None:
            try:
                payload = pickle.dumps(postprocessor, pickle.HIGHEST_PROTOCOL)
            except Exception as error:  # e.g. a postprocessor holding a lambda or a weakref
                warning = f"postprocessor not cached ({type(error).__name__}: {error}); its setup reruns next time"
            else:
                _dump_atomic(os.path.join(entry.folder, _POSTPROCESSOR), lambda stream: stream.write(payload))
        _dump_atomic(os.path.join(entry.folder, _FINGERPRINT),
                     lambda stream: stream.write(json.dumps(dict(entry.fingerprint), indent=1, sort_keys=True).encode()))
        return warning
