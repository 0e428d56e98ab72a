"""What the runner knows about OpenOOD's four benchmarks, their networks and the leaderboard.

Plain data, no OpenOOD import: the dataset lists themselves come from OpenOOD's
``DATA_INFO`` at run time; this module holds what OpenOOD keeps in its scripts (which
network each benchmark uses, where its checkpoints come from) and on its leaderboard
branch (file names, column values, postprocessor aliases).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Dict, Optional

__all__ = [
    "Benchmark",
    "ImageNetArch",
    "BENCHMARKS",
    "IMAGENET_ARCHS",
    "LEADERBOARD_NAMES",
    "NEEDS_OWN_NETWORK",
    "benchmark",
    "imagenet_arch",
    "display_name",
    "download_data_command",
    "download_checkpoints_command",
]

_DOWNLOAD = "python scripts/download/download.py"


@dataclass(frozen=True)
class Benchmark:
    """One OpenOOD benchmark as its evaluation scripts run it.

    Attributes:
        id_name: OpenOOD's name of the in-distribution dataset (``--id-data``).
        num_classes: classes of the ID dataset.
        network: class in ``openood.networks`` for ``--root`` checkpoints; None when the
            network comes from ``--arch`` (ImageNet-1k).
        leaderboard: stem of the leaderboard's results file (``cifar10``, ``imagenet1k``).
        split_files: whether the leaderboard keeps ``<stem>_ood.csv`` and ``<stem>_fsood.csv``
            (ImageNet) or one ``<stem>.csv`` (CIFAR).
        arch_label: the leaderboard's ``Arch`` value for OpenOOD's checkpoints.
        description: the leaderboard's ``Additional_Description`` for OpenOOD's checkpoints.
        download_name: the benchmark's name in OpenOOD's ``scripts/download/download.py``.
        checkpoints: the ``--checkpoints`` key of that script for OpenOOD's v1.5 models.
        results_folder: where that script puts the checkpoints (the ``--root`` to pass).
    """

    id_name: str
    num_classes: int
    network: Optional[str]
    leaderboard: str
    split_files: bool
    arch_label: str
    description: str
    download_name: str
    checkpoints: str
    results_folder: Optional[str]

    @property
    def uses_root(self) -> bool:
        """True when checkpoints come from ``--root``'s seed folders, False for ``--ckpt-path``."""
        return self.network is not None

    def leaderboard_file(self, fsood: bool) -> str:
        """File name of the leaderboard's results table for this benchmark and task."""
        if self.split_files:
            return f"{self.leaderboard}_{'fsood' if fsood else 'ood'}.csv"
        return f"{self.leaderboard}_fsood.csv" if fsood else f"{self.leaderboard}.csv"


BENCHMARKS: Dict[str, Benchmark] = {
    "cifar10": Benchmark(
        "cifar10", 10, "ResNet18_32x32", "cifar10", False, "ResNet18", "100 epochs",
        "cifar-10", "cifar10_res18_v1.5", "results/cifar10_resnet18_32x32_base_e100_lr0.1_default",
    ),
    "cifar100": Benchmark(
        "cifar100", 100, "ResNet18_32x32", "cifar100", False, "ResNet18", "100 epochs",
        "cifar-100", "cifar100_res18_v1.5", "results/cifar100_resnet18_32x32_base_e100_lr0.1_default",
    ),
    "imagenet200": Benchmark(
        "imagenet200", 200, "ResNet18_224x224", "imagenet200", True, "ResNet18", "90 epochs",
        "imagenet-200", "imagenet200_res18_v1.5", "results/imagenet200_resnet18_224x224_base_e90_lr0.1_default",
    ),
    "imagenet": Benchmark(
        "imagenet", 1000, None, "imagenet1k", True, "ResNet50", "torchvision ckpt",
        "imagenet-1k", "imagenet_res50_v1.5", None,
    ),
}


@dataclass(frozen=True)
class ImageNetArch:
    """An ImageNet-1k classifier OpenOOD's ``scripts/eval_ood_imagenet.py`` evaluates.

    Attributes:
        network: class in ``openood.networks`` (torchvision's model with OpenOOD's forward).
        weights: torchvision weights enum and member OpenOOD's leaderboard used; it gives the
            preprocessing and the download address (nothing is downloaded here).
        arch_label: the leaderboard's ``Arch`` value.
    """

    network: str
    weights: str
    arch_label: str


IMAGENET_ARCHS: Dict[str, ImageNetArch] = {
    "resnet50": ImageNetArch("ResNet50", "ResNet50_Weights.IMAGENET1K_V1", "ResNet50"),
    "swin-t": ImageNetArch("Swin_T", "Swin_T_Weights.IMAGENET1K_V1", "Swin-T"),
    "vit-b-16": ImageNetArch("ViT_B_16", "ViT_B_16_Weights.IMAGENET1K_V1", "ViT-B/16"),
    "regnet": ImageNetArch("RegNet_Y_16GF", "RegNet_Y_16GF_Weights.IMAGENET1K_SWAG_E2E_V1", "RegNet_Y_16GF"),
}

# OpenOOD's registry names -> the aliases its leaderboard prints (utils/papers.csv there)
LEADERBOARD_NAMES: Dict[str, str] = {
    "openmax": "OpenMax", "msp": "MSP", "temp_scaling": "TempScale", "odin": "ODIN",
    "mds": "MDS", "mds_ensemble": "MDSEns", "rmds": "RMDS", "gram": "Gram", "ebo": "EBO",
    "opengan": "OpenGAN", "gradnorm": "GradNorm", "react": "ReAct", "mls": "MLS",
    "klm": "KLM", "vim": "VIM", "knn": "KNN", "dice": "DICE", "rankfeat": "RankFeat",
    "ash": "ASH", "she": "SHE", "gen": "GEN", "nnguide": "NNGuide", "relation": "Relation",
    "scale": "SCALE", "fdbd": "fDBD", "mos": "MOS", "mcd": "MCD",
    "gaia_z": "GAIA-Z", "gaia_a": "GAIA-A",
}

# postprocessors for which OpenOOD's scripts build a network of their own (a trained head,
# a projection, a rotation branch...): they need that method's own checkpoints
NEEDS_OWN_NETWORK = frozenset(
    {"conf_branch", "godin", "rotpred", "cider", "reweightood", "npos", "palm", "t2fnorm"}
)


def _lookup(table: Dict[str, object], name: str, what: str, option: str) -> object:
    if name not in table:
        close = difflib.get_close_matches(name, list(table), n=3)
        hint = f" Did you mean {close}?" if close else ""
        raise ValueError(f"unknown {what} '{name}' ({option}).{hint} Known: {sorted(table)}")
    return table[name]


def benchmark(id_name: str) -> Benchmark:
    """The benchmark of OpenOOD ID dataset ``id_name``; ValueError naming the known ones."""
    return _lookup(BENCHMARKS, id_name, "ID dataset", "--id-data")  # type: ignore[return-value]


def imagenet_arch(name: str) -> ImageNetArch:
    """The ImageNet-1k architecture ``name`` (``resnet50``, ``swin-t``, ``vit-b-16``, ``regnet``)."""
    return _lookup(IMAGENET_ARCHS, name, "ImageNet architecture", "--arch")  # type: ignore[return-value]


def display_name(postprocessor: str) -> str:
    """The leaderboard's alias of an OpenOOD postprocessor name (``gaia_a`` -> ``GAIA-A``)."""
    return LEADERBOARD_NAMES.get(postprocessor, postprocessor)


def download_data_command(spec: Benchmark, data_root: str = "./data") -> str:
    """OpenOOD's command that downloads the image lists and images of ``spec``."""
    return (f"{_DOWNLOAD} --contents datasets --datasets {spec.download_name} "
            f"--dataset_mode benchmark --save_dir {data_root} ./results")


def download_checkpoints_command(spec: Benchmark) -> str:
    """OpenOOD's command that downloads its v1.5 checkpoints of ``spec``."""
    return f"{_DOWNLOAD} --contents checkpoints --checkpoints {spec.checkpoints} --save_dir ./data ./results"
