"""The fingerprinted result cache."""
import json
import os
import pickle
import threading

import pytest

from gaia_openood.runner.cache import ResultCache

PRINT = {"code": "abc", "checkpoint": "123", "batch_size": 200}
SCORES = {"id": {"test": [[1, 2], [0.5, 0.25], [1, 0]]}, "id_preds": None}


class Picklable:
    def __init__(self):
        self.threshold = 0.7


class Unpicklable:
    def __init__(self):
        self.lock = threading.Lock()


def test_round_trip_and_hit(tmp_path):
    cache = ResultCache(str(tmp_path))
    entry = cache.entry("ebo", "s0", PRINT)
    assert cache.load(entry).status == "miss"
    assert cache.save(entry, SCORES, Picklable()) is None
    found = cache.load(cache.entry("ebo", "s0", dict(PRINT)))
    assert found.hit and found.scores == SCORES and found.postprocessor.threshold == 0.7
    assert sorted(os.listdir(tmp_path / "ebo" / "s0")) == ["fingerprint.json", "postprocessor.pkl", "scores.pkl"]


def test_another_fingerprint_is_stale_and_names_the_change(tmp_path):
    cache = ResultCache(str(tmp_path))
    cache.save(cache.entry("msp", "s1", PRINT), SCORES)
    found = cache.load(cache.entry("msp", "s1", {**PRINT, "checkpoint": "456"}))
    assert found.status == "stale" and found.reason == "changed: checkpoint"
    assert found.scores is None and not found.hit


def test_saving_replaces_the_old_entry(tmp_path):
    cache = ResultCache(str(tmp_path))
    cache.save(cache.entry("ebo", "s0", PRINT), SCORES, Picklable())
    new = cache.entry("ebo", "s0", {**PRINT, "code": "new"})
    cache.save(new, {"id": None})
    found = cache.load(new)
    assert found.hit and found.scores == {"id": None} and found.postprocessor is None


def test_unpicklable_postprocessor_is_skipped_with_a_warning(tmp_path):
    cache = ResultCache(str(tmp_path))
    entry = cache.entry("gaia_a", "s0", PRINT)
    warning = cache.save(entry, SCORES, Unpicklable())
    assert "postprocessor not cached" in warning
    assert cache.load(entry).hit


def test_corrupt_files_are_a_miss(tmp_path):
    cache = ResultCache(str(tmp_path))
    entry = cache.entry("msp", "s0", PRINT)
    cache.save(entry, SCORES)
    with open(os.path.join(entry.folder, "scores.pkl"), "wb") as handle:
        handle.write(b"not a pickle")
    assert cache.load(entry).status == "unreadable"
    with open(os.path.join(entry.folder, "fingerprint.json"), "w") as handle:
        handle.write("{")
    assert cache.load(entry).status == "unreadable"


def test_refresh_and_disabled(tmp_path):
    ResultCache(str(tmp_path)).save(ResultCache(str(tmp_path)).entry("msp", "s0", PRINT), SCORES)
    refreshing = ResultCache(str(tmp_path), refresh=True)
    assert refreshing.load(refreshing.entry("msp", "s0", PRINT)).status == "miss"
    off = ResultCache(str(tmp_path / "off"), enabled=False)
    entry = off.entry("msp", "s0", PRINT)
    assert off.load(entry).status == "off"
    off.save(entry, SCORES)
    assert not os.path.exists(tmp_path / "off")


def test_an_interrupted_save_leaves_no_valid_entry(tmp_path):
    cache = ResultCache(str(tmp_path))
    entry = cache.entry("msp", "s0", PRINT)
    cache.save(entry, SCORES)
    with pytest.raises((pickle.PicklingError, AttributeError)):
        cache.save(entry, {"id": lambda: None})  # scores that cannot be pickled stop the save
    assert cache.load(entry).status == "miss"
    assert not [name for name in os.listdir(entry.folder) if name.startswith(".tmp-")]
    cache.save(entry, SCORES)
    with open(os.path.join(entry.folder, "fingerprint.json")) as handle:
        assert json.load(handle) == PRINT
