"""The ``gaia-openood`` command line.

    gaia-openood layers --arch resnet18_32x32          # what GAIA-Z / GAIA-A hook, with channels
    gaia-openood configs                               # where the OpenOOD YAMLs of GAIA live
    gaia-openood openood-main -- --config ...          # OpenOOD's legacy main.py with GAIA registered
    gaia-openood openood-eval --id-data cifar10 ...     # OpenOOD benchmark runner, all seeds, leaderboard files
    gaia-openood eval                                  # GAIA vs baselines on the embedded benchmark
    gaia-openood eval --benchmark DIR --arch resnet20 --checkpoint resnet20.pt
"""
from __future__ import annotations

import argparse
import os
import runpy
import sys
from typing import List, Optional

__all__ = ["main", "build_parser"]


def _add_layers(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "layers",
        help="list the layers GAIA-Z and GAIA-A hook in a model",
        description="Probe a model once and print its normalization layers and GAIA's choice.",
    )
    parser.add_argument("--arch", required=True, help="architecture name, e.g. resnet20, resnet18_32x32, torchvision:resnet50")
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--checkpoint", help="optional weights to load (the layer choice does not depend on them)")
    parser.add_argument("--input-size", type=int, nargs="+", default=None, metavar="N",
                        help="H W (or one size for square images); default 32, or 224 for torchvision models")
    parser.add_argument("--z-layers", default="auto", help="GAIA-Z layer spec (default: auto)")
    parser.add_argument("--inner-layers", default="auto", help="GAIA-A inner layer spec (default: auto)")
    parser.add_argument("--output-layer", default="auto", help="GAIA-A output layer (default: auto)")
    parser.set_defaults(func=_run_layers)


def _spec(text: str):
    if text.isdigit():
        return int(text)
    return text.split(",") if "," in text else text


def _run_layers(args: argparse.Namespace) -> int:
    from .layers import format_layer_table, list_layers
    from .models import build_model, load_checkpoint

    model = build_model(args.arch, args.num_classes)
    if args.checkpoint:
        load_checkpoint(model, args.checkpoint)
    size = args.input_size or ([224] if args.arch.startswith("torchvision:") else [32])
    if len(size) not in (1, 2):
        raise ValueError("--input-size takes one or two numbers")
    height, width = (size[0], size[0]) if len(size) == 1 else size
    rows = list_layers(
        model.eval(),
        (3, height, width),
        z_layers=_spec(args.z_layers),
        inner_layers=_spec(args.inner_layers),
        output_layer=args.output_layer,
    )
    print(f"{args.arch}, input 3x{height}x{width}")
    print(format_layer_table(rows))
    return 0


def _add_configs(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "configs",
        help="print the folder holding GAIA's OpenOOD configs",
        description="Print the config root (its postprocessors/ holds gaia_z.yml and gaia_a.yml).",
    )
    parser.set_defaults(func=_run_configs)


def _run_configs(args: argparse.Namespace) -> int:
    from .openood import config_root

    print(config_root())
    return 0


def _add_openood_main(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "openood-main",
        help="run OpenOOD's main.py with gaia_z / gaia_a registered",
        description=(
            "Run OpenOOD's legacy main.py (from the current OpenOOD checkout, or --main) after "
            "gaia_openood.register(), passing every remaining argument through. Use the config "
            "printed by `gaia-openood configs`/postprocessors/gaia_a.yml as the postprocessor config."
        ),
    )
    parser.add_argument("--main", default="main.py", help="path of OpenOOD's main.py (default: ./main.py)")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for main.py (after --)")
    parser.set_defaults(func=_run_openood_main)


def _run_openood_main(args: argparse.Namespace) -> int:
    from .openood import register

    if not os.path.isfile(args.main):
        raise FileNotFoundError(f"{args.main} not found: run from an OpenOOD checkout or pass --main PATH/main.py")
    register()
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    sys.argv = [args.main, *rest]
    runpy.run_path(args.main, run_name="__main__")
    return 0


def _add_openood_eval(subparsers: argparse._SubParsersAction) -> None:
    from .runner.command import add_arguments, run_command

    parser = subparsers.add_parser(
        "openood-eval",
        help="run OpenOOD's evaluator for GAIA and baselines over all seeds; CSVs and leaderboard files",
    )
    add_arguments(parser)
    parser.set_defaults(func=run_command)


_EVAL_EPILOG = """\
Without --benchmark, the embedded default runs: scikit-learn's digits 0-7 as ID, digits 8-9 as
near-OOD, patches of scikit-learn's two sample photos as far-OOD, and a small ResNet trained on the
spot (seconds on one CPU thread, then cached).

A benchmark folder holds id_test.npz (x: images, y: labels), ood/near/*.npz and ood/far/*.npz
(x), and optionally id_train.npz (x, y; for KNN and ReAct) and benchmark.json (file names,
near/far assignment, mean/std). Images are uint8 (N, H, W, C), divided by 255, or float
(N, C, H, W) as they are; then (x - mean) / std. --benchmark may also name a manifest .json
whose paths are relative to --data-root. See the README.

Outputs in --out (default runs/<benchmark>[-<arch>]): table.md, metrics.csv, scores.npz,
scores.png, roc.png, summary.json.
"""


def _add_eval(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="GAIA-Z, GAIA-A and baselines side by side on a benchmark (default: an embedded one)",
        description=(
            "Score an ID test set and OOD sets with GAIA-Z, GAIA-A and baselines (OpenOOD's "
            "postprocessors when OpenOOD is installed, pytorch-ood's detectors otherwise); print "
            "AUROC, FPR@95, AUPR-IN, AUPR-OUT per set with near/far-OOD averages and the ID "
            "accuracy; save tables, per-sample scores and plots."
        ),
        epilog=_EVAL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = parser.add_argument_group("benchmark and model (omit all for the embedded default)")
    data.add_argument("--benchmark", metavar="PATH", help="benchmark folder, or a manifest .json")
    data.add_argument("--data-root", metavar="DIR", help="folder the manifest's relative paths start from")
    data.add_argument("--arch", help="architecture, e.g. resnet20, resnet56, resnet18_32x32, torchvision:resnet50")
    data.add_argument("--checkpoint", metavar="FILE", help="weights of the model (a state dict or a dict holding one)")
    data.add_argument("--num-classes", type=int, help="number of logits (default: the benchmark's class count)")
    run = parser.add_argument_group("what to run")
    run.add_argument("--methods", help="comma-separated method names (default: all; see --list-methods)")
    run.add_argument("--list-methods", action="store_true", help="print the known methods and exit")
    run.add_argument("--baselines", choices=("auto", "pytorch-ood", "openood"), default="auto",
                     help="where the baselines come from (default auto: OpenOOD if importable, else pytorch-ood)")
    run.add_argument("--max-samples", type=int, metavar="N",
                     help="score at most N images per set (a fixed random subset, see --seed)")
    run.add_argument("--seed", type=int, default=0, help="seed of the --max-samples subset (default 0)")
    run.add_argument("--fpr-definition", choices=("main", "v1.5"), default="main",
                     help="main (default): ID flagged OOD at 95%% OOD recall, as OpenOOD's main branch; "
                          "v1.5: OOD accepted at 95%% ID recall, the classic FPR95")
    run.add_argument("--device", help="e.g. cpu, cuda, cuda:1 (default: cuda if available, else cpu)")
    run.add_argument("--batch-size", type=int, default=128)
    run.add_argument("--threads", type=int, metavar="N",
                     help="PyTorch CPU threads (default: PyTorch's choice; 1 for the embedded default)")
    output = parser.add_argument_group("output")
    output.add_argument("--out", metavar="DIR", help="output folder (default runs/<benchmark>[-<arch>])")
    output.add_argument("--cache-dir", metavar="DIR",
                        help="where the default model is cached (default $GAIA_OPENOOD_CACHE or ~/.cache/gaia-openood)")
    output.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    output.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    from .eval.command import EvalOptions, run
    from .eval.methods import METHODS

    if args.list_methods:
        for key, method in METHODS.items():
            print(f"{key:10s} {method.title:9s} {method.settings}")
        return 0
    options = EvalOptions(
        benchmark=args.benchmark,
        data_root=args.data_root,
        arch=args.arch,
        checkpoint=args.checkpoint,
        num_classes=args.num_classes,
        methods=args.methods,
        baselines=args.baselines,
        out=args.out,
        device=args.device,
        batch_size=args.batch_size,
        max_samples=args.max_samples,
        seed=args.seed,
        fpr_definition=args.fpr_definition,
        cache_dir=args.cache_dir,
        threads=args.threads,
        plots=not args.no_plots,
        progress=not args.no_progress,
    )
    outputs = run(options)
    print(outputs.text)
    print(f"Wrote {', '.join(os.path.basename(p) for p in outputs.files.values())} to {outputs.folder}/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gaia-openood",
        description="GAIA-Z and GAIA-A out-of-distribution detectors for OpenOOD.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_layers(subparsers)
    _add_configs(subparsers)
    _add_openood_main(subparsers)
    _add_openood_eval(subparsers)
    _add_eval(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, TypeError, KeyError, ImportError) as error:
        print(f"gaia-openood {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
