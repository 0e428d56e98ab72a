"""The settings of one benchmark run, checked for consistency before anything else."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

from .benchmarks import Benchmark, benchmark, imagenet_arch

__all__ = ["RunnerOptions", "DEFAULT_POSTPROCESSORS"]

DEFAULT_POSTPROCESSORS = ("msp", "gaia_z", "gaia_a")


@dataclass
class RunnerOptions:
    """Everything :func:`gaia_openood.runner.run_benchmark` needs (the CLI's flags).

    Attributes:
        id_data: OpenOOD ID dataset: cifar10, cifar100, imagenet200 or imagenet.
        postprocessors: OpenOOD postprocessor names, GAIA's included (``gaia_z``, ``gaia_a``).
        root: folder of OpenOOD's seed folders ``s0/best.ckpt, s1/best.ckpt ...`` (not imagenet).
        ckpt_paths: ImageNet-1k weights files (torchvision state dicts), one run each.
        arch: ImageNet-1k architecture (resnet50, swin-t, vit-b-16, regnet).
        seeds: seed folders to use (default: all ``s<N>`` folders of ``root``).
        data_root: OpenOOD's ``data/`` folder (``benchmark_imglist``, ``images_classic`` ...).
        config_root: OpenOOD's ``configs/`` folder (the baselines' YAMLs; GAIA's are packaged).
        output: where results go (default ``runs/openood/<id_data>``).
        batch_size, num_workers: data loading, as OpenOOD's evaluator takes them.
        device: torch device; None means CUDA when available, else CPU.
        fsood: full-spectrum OOD (covariate-shifted ID counts as ID), as OpenOOD's ``--fsood``.
        cache: reuse fingerprinted results of earlier runs; ``recompute`` ignores them.
        progress: progress bars.
        training, outlier_data, description, arch_label: the leaderboard's descriptive
            columns (defaults: OpenOOD's checkpoints of the benchmark).
    """

    id_data: str
    postprocessors: Sequence[str] = DEFAULT_POSTPROCESSORS
    root: Optional[str] = None
    ckpt_paths: Sequence[str] = ()
    arch: Optional[str] = None
    seeds: Optional[Sequence[str]] = None
    data_root: str = "./data"
    config_root: str = "./configs"
    output: Optional[str] = None
    batch_size: int = 200
    num_workers: int = 4
    device: Optional[str] = None
    fsood: bool = False
    cache: bool = True
    recompute: bool = False
    progress: bool = True
    training: str = "CrossEntropy"
    outlier_data: str = "No"
    description: Optional[str] = None
    arch_label: Optional[str] = None
    methods: List[str] = field(init=False, default_factory=list)

    def validate(self) -> Benchmark:
        """Check the flags fit together; fills :attr:`methods` (de-duplicated) and defaults.

        Returns the benchmark. Raises ValueError naming the flag to fix.
        """
        spec = benchmark(self.id_data)
        if spec.uses_root:
            if not self.root:
                raise ValueError(f"--id-data {self.id_data} needs --root, the folder holding the seed "
                                 f"folders s0/best.ckpt, s1/best.ckpt ... (OpenOOD: {spec.results_folder})")
            if self.ckpt_paths:
                raise ValueError("--ckpt-path is for --id-data imagenet; use --root for "
                                 f"{self.id_data} (its seed folders hold best.ckpt)")
            if self.arch:
                raise ValueError(f"--arch is for --id-data imagenet; {self.id_data} uses OpenOOD's {spec.network}")
        else:
            if not self.ckpt_paths:
                raise ValueError("--id-data imagenet needs --ckpt-path WEIGHTS.pth (torchvision weights; "
                                 "several files are evaluated as several runs)")
            if self.root or self.seeds:
                raise ValueError("--root/--seeds are for seed folders; for imagenet pass --ckpt-path")
            self.arch = self.arch or "resnet50"
            imagenet_arch(self.arch)
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.num_workers < 0:
            raise ValueError(f"--num-workers must be 0 or more, got {self.num_workers}")
        self.methods = list(dict.fromkeys(self.postprocessors))
        if not self.methods:
            raise ValueError("--postprocessors needs at least one name (e.g. msp gaia_z gaia_a)")
        if self.output is None:
            self.output = os.path.join("runs", "openood", self.id_data)
        return spec

    @property
    def task(self) -> str:
        """``fsood`` or ``ood``: OpenOOD's name of the evaluation and of its CSV folder."""
        return "fsood" if self.fsood else "ood"
