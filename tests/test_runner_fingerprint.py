"""Fingerprints: file digests, the source closure of a class, what changed."""
import importlib
import os
import sys
import textwrap

import pytest

from gaia_openood.openood import GAIAZPostprocessor
from gaia_openood.runner.fingerprint import changed_keys, code_digest, file_digest, files_digest, source_files


def test_file_digest_follows_content(tmp_path):
    path = tmp_path / "best.ckpt"
    path.write_bytes(b"weights one")
    first = file_digest(str(path))
    assert first == file_digest(str(path))
    path.write_bytes(b"weights two")
    os.utime(path, ns=(1, 1))  # a new mtime, as any rewrite gives
    assert file_digest(str(path)) != first


def test_files_digest_depends_on_every_file(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("x 1\n")
    b.write_text("y -1\n")
    before = files_digest([str(a), str(b)])
    b.write_text("y -1\nz -1\n")
    assert files_digest([str(a), str(b)]) != before


def test_gaia_postprocessor_closure_covers_the_score_code():
    names = {os.path.basename(path) for path in source_files([GAIAZPostprocessor])}
    assert {"openood.py", "detector.py", "scores.py", "capture.py", "layers.py"} <= names
    assert "__init__.py" not in names and "cli.py" not in names


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A throwaway package: api.Thing subclasses base.Base, which uses helper; __init__ imports all."""
    root = tmp_path / "fakepkg"
    (root / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "from .api import Thing\nfrom . import unrelated\n",
        "api.py": "from .base import Base\nfrom fakepkg.sub import tools\nclass Thing(Base):\n    pass\n",
        "base.py": "import os\nfrom .helper import VALUE\nclass Base:\n    value = VALUE\n",
        "helper.py": "VALUE = 1\n",
        "unrelated.py": "X = 0\n",
        "sub/__init__.py": "",
        "sub/tools.py": "def tool():\n    return 1\n",
    }
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    module = importlib.import_module("fakepkg")
    yield root, module
    for name in [n for n in sys.modules if n == "fakepkg" or n.startswith("fakepkg.")]:
        del sys.modules[name]


def test_closure_follows_imports_within_the_packages(package):
    root, module = package
    files = source_files([module.Thing], packages=["fakepkg"])
    assert sorted(os.path.relpath(f, root) for f in files) == ["api.py", "base.py", "helper.py", "sub/tools.py"]
    before = code_digest([module.Thing], packages=["fakepkg"])
    (root / "helper.py").write_text("VALUE = 2\n")
    assert code_digest([module.Thing], packages=["fakepkg"]) != before
    after = code_digest([module.Thing], packages=["fakepkg"])
    (root / "unrelated.py").write_text("X = 1\n")
    assert code_digest([module.Thing], packages=["fakepkg"]) == after


def test_stop_modules_count_but_are_not_followed(package):
    root, module = package
    files = source_files([module.Thing], packages=["fakepkg"], stop=["fakepkg.base"])
    assert sorted(os.path.relpath(f, root) for f in files) == ["api.py", "base.py", "sub/tools.py"]


def test_changed_keys():
    old = {"code": "a", "checkpoint": "b", "batch_size": 200}
    assert changed_keys(old, dict(old)) == []
    assert changed_keys(old, {**old, "checkpoint": "c", "config": "d"}) == ["checkpoint", "config"]
