#!/usr/bin/env python
"""OpenOOD benchmark runner for GAIA and OpenOOD's postprocessors (same as `gaia-openood openood-eval`).

    python scripts/eval_ood.py --id-data cifar10 \
        --root results/cifar10_resnet18_32x32_base_e100_lr0.1_default \
        --postprocessors msp ebo gradnorm react gaia_z gaia_a

Run `python scripts/eval_ood.py --help` for every flag; the logic is in gaia_openood.runner.
"""
import os
import sys

if __name__ == "__main__":
    # usable from a checkout of this repository without installing it
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from gaia_openood.runner.command import main

    sys.exit(main(prog="eval_ood.py"))
