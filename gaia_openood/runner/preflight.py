"""Checks made before any work: OpenOOD, postprocessors, configs, data, checkpoints.

OpenOOD's evaluator downloads whatever data or config it does not find (``gdown`` from
Google Drive, ``urllib`` from GitHub) and its scripts crash half-way on a missing
checkpoint. The runner first checks everything here and stops with one
:class:`PreflightError` that lists every missing piece with the command that gets it.

The data checks take OpenOOD's own description of the benchmarks (:class:`DataLayout`,
from ``openood.evaluation_api.datasets``) and mirror what the evaluator does with it:
it opens every image list of the ID dataset, and ``data_setup`` downloads every dataset
folder of ``benchmarks_dict[id]`` that is missing or empty.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, List, Mapping, Optional, Sequence, Tuple

from .benchmarks import NEEDS_OWN_NETWORK, Benchmark, download_checkpoints_command, download_data_command

__all__ = [
    "Problem",
    "PreflightError",
    "DataLayout",
    "Run",
    "ImageList",
    "require_openood",
    "image_lists",
    "check_methods",
    "check_configs",
    "check_config_files",
    "check_data",
    "find_seed_runs",
    "weight_runs",
    "reads_training_split",
]

_INSTALL = ("git clone https://github.com/Jingkang50/OpenOOD && pip install -e ./OpenOOD "
            "(OpenOOD is not on PyPI; see its README for its dependencies)")
# modules OpenOOD imports that are commonly missing -> how to install them
_DEPENDENCY_HINTS = {
    "faiss": "pip install faiss-cpu (or faiss-gpu)",
    "libmr": "pip install Cython numpy && pip install --no-build-isolation libmr",
    "cv2": "pip install opencv-python",
    "imgaug": "pip install imgaug 'numpy<2'",
    "diffdist": "pip install diffdist",
    "statsmodels": "pip install statsmodels",
    "gdown": "pip install gdown",
    "timm": "pip install timm",
    "foolbox": "pip install foolbox",
}


@dataclass(frozen=True)
class Problem:
    """One thing missing: what, and how to get it."""

    what: str
    fix: str


class PreflightError(Exception):
    """The run cannot start; ``problems`` lists every reason with its fix."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        lines = ["cannot start, nothing was evaluated or downloaded:"]
        for problem in self.problems:
            lines.append(f"  - {problem.what}")
            lines.append(f"    fix: {problem.fix}")
        super().__init__("\n".join(lines))


def require_openood() -> None:
    """Import OpenOOD's evaluation API or raise PreflightError saying how to install it."""
    try:
        importlib.import_module("openood.evaluation_api")
    except Exception as error:  # OpenOOD's imports fail in many ways (ImportError, numpy 2 ...)
        missing = getattr(error, "name", None) or ""
        if missing == "openood":
            problem = Problem("OpenOOD is not installed in this Python environment", _INSTALL)
        elif missing == "openood.evaluation_api":
            problem = Problem("this OpenOOD has no evaluation API (it came with OpenOOD v1.5)",
                              "update the OpenOOD checkout (git pull) and reinstall it: pip install -e ./OpenOOD")
        elif missing and not missing.startswith("openood"):
            hint = _DEPENDENCY_HINTS.get(missing.split(".")[0], f"pip install the module '{missing}'")
            problem = Problem(f"OpenOOD is installed but needs the missing module '{missing}'", hint)
        else:
            problem = Problem(f"OpenOOD is installed but cannot be imported: {error!r}",
                              "install OpenOOD's dependencies (see its README and requirements)")
        raise PreflightError([problem]) from None


@dataclass(frozen=True)
class DataLayout:
    """OpenOOD's description of its benchmarks (``openood.evaluation_api.datasets``).

    Attributes:
        data_info: ``DATA_INFO``: per ID dataset, the image lists of every split.
        benchmark_datasets: ``benchmarks_dict``: the dataset folders each benchmark needs.
        folders: ``dir_dict``: which top folder (``images_classic/`` ...) holds a dataset.
    """

    data_info: Mapping[str, Any]
    benchmark_datasets: Mapping[str, Sequence[str]]
    folders: Mapping[str, Sequence[str]]

    @classmethod
    def from_openood(cls) -> "DataLayout":
        from openood.evaluation_api import datasets

        return cls(datasets.DATA_INFO, datasets.benchmarks_dict, datasets.dir_dict)

    def dataset_folder(self, dataset: str) -> Optional[str]:
        """``images_classic/cifar100`` for ``cifar100``: where OpenOOD keeps a dataset."""
        for folder, names in self.folders.items():
            if dataset in names:
                return os.path.join(folder, dataset)
        return None


@dataclass(frozen=True)
class ImageList:
    """One image list of a benchmark: ``group`` is id, csid, ood_val, near or far."""

    group: str
    name: str
    data_dir: str
    imglist_path: str


def image_lists(data_info: Mapping[str, Any], id_name: str) -> List[ImageList]:
    """Every image list OpenOOD's evaluator opens for ``id_name``, in its order."""
    info = data_info[id_name]
    lists = [ImageList("id", split, e["data_dir"], e["imglist_path"]) for split, e in info["id"].items()]
    lists += [ImageList("csid", name, info["csid"][name]["data_dir"], info["csid"][name]["imglist_path"])
              for name in info["csid"]["datasets"]]
    val = info["ood"]["val"]
    lists.append(ImageList("ood_val", "val", val["data_dir"], val["imglist_path"]))
    for group in ("near", "far"):
        for name in info["ood"][group]["datasets"]:
            entry = info["ood"][group][name]
            lists.append(ImageList(group, name, entry["data_dir"], entry["imglist_path"]))
    return lists


def check_methods(methods: Sequence[str], known: Iterable[str]) -> List[Problem]:
    """Unknown postprocessor names (with close matches), and those needing their own network."""
    known = sorted(set(known))
    problems = []
    for method in methods:
        if method in NEEDS_OWN_NETWORK:
            problems.append(Problem(
                f"postprocessor '{method}' needs a network of its own, trained for it",
                "evaluate it with OpenOOD's scripts/eval_ood.py and its checkpoints; this runner "
                "evaluates post-hoc methods on the standard classifier"))
        elif method not in known:
            close = difflib.get_close_matches(method, known, n=3)
            problems.append(Problem(
                f"unknown postprocessor '{method}'" + (f" (did you mean {', '.join(close)}?)" if close else ""),
                f"use one of: {', '.join(m for m in known if m not in NEEDS_OWN_NETWORK)}"))
    return problems


def check_configs(config_root: str, methods: Sequence[str], packaged: Iterable[str]) -> List[Problem]:
    """Each method that is not ``packaged`` needs ``<config_root>/postprocessors/<method>.yml``."""
    wanted = [m for m in methods if m not in set(packaged)]
    if not wanted:
        return []
    fix = ("run from your OpenOOD checkout (its configs/ folder) or pass --config-root "
           "PATH/TO/OpenOOD/configs; OpenOOD would otherwise download the file from GitHub")
    folder = os.path.join(config_root, "postprocessors")
    if not os.path.isdir(folder):
        return [Problem(f"config folder {folder} does not exist (needed for {', '.join(wanted)})", fix)]
    return [Problem(f"postprocessor config {os.path.join(folder, m + '.yml')} is missing", fix)
            for m in wanted if not os.path.isfile(os.path.join(folder, m + ".yml"))]


def check_config_files(paths: Mapping[str, str], check: Callable[[str, str], Any]) -> List[Problem]:
    """Each method's config file passes ``check(method, path)`` (which raises ValueError if not).

    The runner's check parses every YAML and builds GAIA's postprocessors from theirs, so a
    malformed file or an unknown option stops the run here rather than half-way.
    """
    problems = []
    for method, path in paths.items():
        try:
            check(method, path)
        except (ValueError, OSError) as error:
            problems.append(Problem(f"config {path} of '{method}' is not usable: {error}",
                                    "fix the file (OpenOOD's configs/postprocessors/ has the originals; "
                                    "`gaia-openood configs` shows GAIA's)"))
    return problems


def _first_and_last_line(path: str) -> Tuple[str, str]:
    with open(path, "rb") as handle:
        first = handle.readline()
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 8192))
        tail = [line for line in handle.read().splitlines() if line.strip()]
    last = tail[-1] if tail else first
    return first.decode("utf-8", "replace").strip(), last.decode("utf-8", "replace").strip()


def _dataset_fix(dataset: str, data_root: str) -> str:
    return (f"python scripts/download/download.py --contents datasets --datasets {dataset} "
            f"--dataset_mode dataset --save_dir {data_root} ./results")


def _missing_folders(layout: DataLayout, spec: Benchmark, data_root: str) -> List[str]:
    """Dataset folders of the benchmark that are missing or empty (``data_setup`` downloads those)."""
    missing = []
    for dataset in layout.benchmark_datasets.get(spec.id_name, ()):
        relative = layout.dataset_folder(dataset)
        folder = os.path.join(data_root, relative) if relative else None
        if folder and (not os.path.isdir(folder) or not os.listdir(folder)):
            missing.append(dataset)
    return missing


def _image_problem(entry: ImageList, spec: Benchmark, data_root: str, list_path: str,
                   skip: Sequence[str]) -> Optional[Problem]:
    """The first of the list's first and last images that is missing, unless its dataset
    folder is already reported missing (``skip``)."""
    first, last = _first_and_last_line(list_path)
    if not first:
        return Problem(f"image list {list_path} is empty", download_data_command(spec, data_root))
    for line, position in ((first, "first"), (last, "last")):
        image = os.path.join(data_root, entry.data_dir, line.split(" ", 1)[0])
        dataset = line.split("/", 1)[0]
        if dataset not in skip and not os.path.isfile(image):
            fix = _dataset_fix(dataset, data_root)
            if spec.id_name == "imagenet" and entry.name == "train":
                fix = ("ImageNet-1k training images come from image-net.org (OpenOOD does not "
                       f"distribute them); put them under {os.path.join(data_root, entry.data_dir)}")
            return Problem(f"image {image} is missing ({position} entry of {list_path})", fix)
    return None


def check_data(layout: DataLayout, spec: Benchmark, data_root: str, *, fsood: bool = False,
               needs_train: bool = False) -> List[Problem]:
    """What OpenOOD's evaluator would download or fail on for benchmark ``spec``.

    Checks the ``benchmark_imglist`` folder, every image list of the ID dataset, every
    dataset folder of the benchmark (present and not empty), and the first and last image
    of each list the evaluation reads: ID test and val, OOD val, near, far; covariate-
    shifted ID with ``fsood``; ID train when ``needs_train``.
    """
    benchmark_fix = download_data_command(spec, data_root)
    if not os.path.isdir(data_root):
        return [Problem(f"data folder {data_root} does not exist", f"{benchmark_fix} (or pass --data-root)")]
    lists_folder = os.path.join(data_root, "benchmark_imglist")
    if not os.path.isdir(lists_folder):
        return [Problem(f"{lists_folder} is missing (OpenOOD's image lists)", benchmark_fix)]
    problems = []
    missing = _missing_folders(layout, spec, data_root)
    if missing:
        problems.append(Problem(f"dataset folder(s) missing or empty in {data_root}, which OpenOOD would "
                                f"download: {', '.join(missing)}",
                                benchmark_fix if len(missing) > 1 else _dataset_fix(missing[0], data_root)))
    entries = image_lists(layout.data_info, spec.id_name)
    absent = [e.imglist_path for e in entries if not os.path.isfile(os.path.join(data_root, e.imglist_path))]
    if absent:
        problems.append(Problem(f"image list(s) missing in {data_root}: {', '.join(absent)}", benchmark_fix))
    for entry in entries:
        path = os.path.join(data_root, entry.imglist_path)
        read = (entry.group in ("id", "ood_val", "near", "far") and (entry.name != "train" or needs_train)) \
            or (entry.group == "csid" and fsood)
        problem = _image_problem(entry, spec, data_root, path, missing) if read and os.path.isfile(path) else None
        if problem:
            problems.append(problem)
    return problems


@dataclass(frozen=True)
class Run:
    """One trained network to evaluate: ``name`` (s0, s1 ... or the weights file) and its file."""

    name: str
    checkpoint: str


def find_seed_runs(root: str, spec: Benchmark, seeds: Optional[Sequence[str]] = None) -> Tuple[List[Run], List[Problem]]:
    """The seed folders ``s0, s1, ...`` of ``root`` (or the chosen ``seeds``), each with best.ckpt."""
    fix = f"{download_checkpoints_command(spec)} (OpenOOD's checkpoints; then --root {spec.results_folder})"
    if not os.path.isdir(root):
        return [], [Problem(f"checkpoint folder {root} does not exist", fix)]
    found = sorted((d for d in os.listdir(root) if re.fullmatch(r"s\d+", d) and os.path.isdir(os.path.join(root, d))),
                   key=lambda d: int(d[1:]))
    if seeds:
        unknown = [s for s in seeds if s not in found]
        if unknown:
            return [], [Problem(f"seed folder(s) {', '.join(unknown)} not in {root} (found: {', '.join(found) or 'none'})",
                                "pass --seeds with folders that exist")]
        found = [s for s in found if s in seeds]
    if not found:
        return [], [Problem(f"no seed folders s0, s1, ... in {root}", fix)]
    runs, problems = [], []
    for seed in found:
        checkpoint = os.path.join(root, seed, "best.ckpt")
        if os.path.isfile(checkpoint):
            runs.append(Run(seed, checkpoint))
        else:
            problems.append(Problem(f"checkpoint {checkpoint} is missing", f"{fix}, or leave {seed} out with --seeds"))
    return runs, problems


def weight_runs(paths: Sequence[str], download_hint: str) -> Tuple[List[Run], List[Problem]]:
    """One run per weights file (ImageNet-1k), named after the file; missing files are problems."""
    runs, problems, names = [], [], set()
    for index, path in enumerate(paths):
        if not os.path.isfile(path):
            problems.append(Problem(f"weights file {path} does not exist", download_hint))
            continue
        name = os.path.splitext(os.path.basename(path))[0]
        name = name if name not in names else f"{name}-{index}"
        names.add(name)
        runs.append(Run(name, path))
    return runs, problems


_TRAIN_SPLIT = re.compile(r"""id_loader_dict\s*\[\s*['"]train['"]\s*\]""")


def reads_training_split(postprocessor_class: type) -> bool:
    """Whether a postprocessor's code reads the ID training split (KNN, MDS, ViM ...).

    Read from its source (the class and its bases), so the image check covers the training
    images only for methods that use them (ImageNet-1k training images are a separate download).
    """
    for cls in inspect.getmro(postprocessor_class):
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            continue
        if _TRAIN_SPLIT.search(source):
            return True
    return False
