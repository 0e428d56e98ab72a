"""The OpenOOD benchmark runner: GAIA next to OpenOOD's postprocessors, every seed, leaderboard files.

    gaia-openood openood-eval --id-data cifar10 \\
        --root results/cifar10_resnet18_32x32_base_e100_lr0.1_default \\
        --postprocessors msp ebo gradnorm react gaia_z gaia_a

From Python:

    >>> from gaia_openood.runner import RunnerOptions, run_benchmark
    >>> report = run_benchmark(RunnerOptions("cifar10", ["msp", "gaia_a"],   # doctest: +SKIP
    ...                                      root="results/cifar10_resnet18_32x32_base_e100_lr0.1_default"))

One job a module: :mod:`.benchmarks` (what OpenOOD's scripts and leaderboard fix),
:mod:`.options`, :mod:`.preflight` (checks before any work), :mod:`.device` (OpenOOD's
``.cuda()`` calls on any device, scoped), :mod:`.fingerprint` and :mod:`.cache` (no stale
results), :mod:`.results` (seed aggregation, OpenOOD's CSV format, summary tables),
:mod:`.leaderboard`, :mod:`.score_files` (per-sample scores), :mod:`.evaluate` (the only
one that touches OpenOOD, lazily) and :mod:`.command` (the command line).
"""
from .device import openood_device
from .evaluate import JobResult, RunReport, run_benchmark
from .options import RunnerOptions
from .preflight import PreflightError

__all__ = ["RunnerOptions", "run_benchmark", "RunReport", "JobResult", "PreflightError", "openood_device"]
