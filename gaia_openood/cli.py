"""The ``gaia-openood`` command line.

    gaia-openood layers --arch resnet18_32x32          # what GAIA-Z / GAIA-A hook, with channels
    gaia-openood configs                               # where the OpenOOD YAMLs of GAIA live
    gaia-openood openood-main -- --config ...          # OpenOOD's legacy main.py with GAIA registered
    gaia-openood openood-eval --id-data cifar10 ...     # OpenOOD benchmark runner, all seeds, leaderboard files
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
        raise SystemExit("--input-size takes one or two numbers")
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
        raise SystemExit(f"{args.main} not found: run from an OpenOOD checkout or pass --main PATH/main.py")
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
