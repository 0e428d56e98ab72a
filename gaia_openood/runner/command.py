"""The runner's command line, shared by ``gaia-openood openood-eval`` and ``scripts/eval_ood.py``.

Flags follow OpenOOD's ``scripts/eval_ood.py`` and ``scripts/eval_ood_imagenet.py``
(``--id-data``, ``--root``, ``--postprocessor(s)``, ``--batch-size``, ``--fsood``,
``--arch``, ``--ckpt-path``) plus what a run outside OpenOOD's checkout needs.
"""
from __future__ import annotations

import argparse
import textwrap
import os
import sys
from typing import List, Optional

from .benchmarks import BENCHMARKS, IMAGENET_ARCHS
from .options import DEFAULT_POSTPROCESSORS, RunnerOptions

__all__ = ["add_arguments", "options_from_args", "run_command", "main", "DESCRIPTION"]

DESCRIPTION = (
    "Run OpenOOD's Evaluator for GAIA-Z, GAIA-A and OpenOOD's postprocessors on an OpenOOD "
    "benchmark, over every training run (seed folders s0, s1, ...), and write OpenOOD's per-method "
    "CSVs, a side-by-side summary, per-sample scores and the leaderboard files. Everything is "
    "checked before any work; nothing is downloaded."
)

EPILOG = """examples (from an OpenOOD checkout):
  %(prog)s --id-data cifar10 --root results/cifar10_resnet18_32x32_base_e100_lr0.1_default \\
      --postprocessors msp ebo gradnorm react gaia_z gaia_a
  %(prog)s --id-data imagenet --arch resnet50 \\
      --ckpt-path results/pretrained_weights/resnet50-0676ba61.pth --postprocessors msp gaia_a
"""


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the runner's flags to ``parser``."""
    parser.description = textwrap.fill(DESCRIPTION, 88)
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    what = parser.add_argument_group("what to evaluate")
    what.add_argument("--id-data", required=True, choices=sorted(BENCHMARKS),
                      help="OpenOOD benchmark (ID dataset)")
    what.add_argument("--postprocessors", "--postprocessor", nargs="+", default=list(DEFAULT_POSTPROCESSORS),
                      metavar="NAME", help="OpenOOD postprocessor names, gaia_z and gaia_a included "
                      f"(default: {' '.join(DEFAULT_POSTPROCESSORS)})")
    what.add_argument("--root", help="checkpoint folder with seed folders s0/best.ckpt, s1/best.ckpt ... "
                      "(cifar10, cifar100, imagenet200), as OpenOOD's scripts/eval_ood.py")
    what.add_argument("--seeds", nargs="+", metavar="sN", help="only these seed folders (default: all s<N>)")
    what.add_argument("--ckpt-path", nargs="+", dest="ckpt_paths", default=[], metavar="PATH",
                      help="imagenet: torchvision weights file(s) of --arch; several files are several runs")
    what.add_argument("--arch", choices=sorted(IMAGENET_ARCHS),
                      help="imagenet: the architecture of --ckpt-path (default: resnet50)")
    what.add_argument("--fsood", action="store_true",
                      help="full-spectrum OOD: covariate-shifted ID sets count as ID (OpenOOD's --fsood)")
    where = parser.add_argument_group("where things are")
    where.add_argument("--data-root", default="./data", help="OpenOOD's data folder (default: ./data)")
    where.add_argument("--config-root", default="./configs",
                       help="OpenOOD's configs folder, for the baselines' YAMLs (default: ./configs); "
                       "GAIA's come with this package unless this folder has its own")
    where.add_argument("--output", help="results folder (default: runs/openood/<id-data>)")
    how = parser.add_argument_group("how")
    how.add_argument("--batch-size", type=int, default=200, help="as OpenOOD's scripts (default: 200)")
    how.add_argument("--num-workers", type=int, default=min(8, os.cpu_count() or 1),
                     help="data loader workers (default: min(8, CPUs))")
    how.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available, else cpu)")
    how.add_argument("--recompute", action="store_true",
                     help="ignore cached postprocessors and scores (they are replaced)")
    how.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    how.add_argument("--no-progress", action="store_true", help="no progress bars")
    board = parser.add_argument_group("leaderboard columns (defaults: OpenOOD's checkpoints)")
    board.add_argument("--training", default="CrossEntropy", help="Training (default: CrossEntropy)")
    board.add_argument("--outlier-data", default="No", choices=["No", "Yes"], help="Outlier_Data (default: No)")
    board.add_argument("--description", help="Additional_Description (default: '100 epochs' for CIFAR, "
                       "'90 epochs' for imagenet200, 'torchvision ckpt' for imagenet)")
    board.add_argument("--arch-label", help="Arch (default: ResNet18 for CIFAR and imagenet200, else from --arch)")
    return parser


def options_from_args(args: argparse.Namespace) -> RunnerOptions:
    """The :class:`RunnerOptions` of parsed flags."""
    return RunnerOptions(
        id_data=args.id_data, postprocessors=args.postprocessors, root=args.root, ckpt_paths=args.ckpt_paths,
        arch=args.arch, seeds=args.seeds, data_root=args.data_root, config_root=args.config_root,
        output=args.output, batch_size=args.batch_size, num_workers=args.num_workers, device=args.device,
        fsood=args.fsood, cache=not args.no_cache, recompute=args.recompute, progress=not args.no_progress,
        training=args.training, outlier_data=args.outlier_data, description=args.description,
        arch_label=args.arch_label,
    )


def run_command(args: argparse.Namespace) -> int:
    """Run the benchmark; 0 when every postprocessor succeeded, 1 when some failed, 2 when
    the run could not start (the message says what is missing and how to get it)."""
    from .evaluate import run_benchmark
    from .preflight import PreflightError

    options = options_from_args(args)
    try:
        report = run_benchmark(options)
    except (PreflightError, ValueError) as error:
        print(f"gaia-openood openood-eval: {error}", file=sys.stderr)
        return 2
    summary = report.files.get("summary")
    if summary:
        with open(summary[1], encoding="utf-8") as handle:
            print("\n" + handle.read())
    print(f"results in {os.path.abspath(options.output)}:")
    for kind in ("method_csvs", "summary", "leaderboard", "record"):
        for path in report.files.get(kind, []):
            print(f"  {os.path.relpath(path, options.output)}")
    for method, error in report.failed.items():
        print(f"FAILED {method}: {error}", file=sys.stderr)
    return 0 if report.ok else 1


def main(argv: Optional[List[str]] = None, prog: Optional[str] = None) -> int:
    """``scripts/eval_ood.py``'s entry point."""
    parser = add_arguments(argparse.ArgumentParser(prog=prog))
    return run_command(parser.parse_args(argv))
