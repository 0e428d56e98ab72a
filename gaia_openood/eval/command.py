"""``gaia-openood eval`` end to end: benchmark and model in, table, scores and plots out.

    >>> outputs = run(EvalOptions())                                # the embedded default  # doctest: +SKIP
    >>> outputs = run(EvalOptions(benchmark="bench/", arch="resnet20",
    ...                           checkpoint="resnet20.pt"))      # doctest: +SKIP

Files written to the output folder: ``table.md``, ``metrics.csv``, ``scores.npz`` (see
:mod:`gaia_openood.eval.report`), ``scores.png``, ``roc.png`` (see
:mod:`gaia_openood.eval.plots`) and ``summary.json`` (settings, sizes, timings, versions).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import time
from typing import Dict, Iterator, Optional, Tuple

import torch
from torch import nn

from ..runner.device import resolve_device
from ..versions import installed_version
from .benchmark import Benchmark, load_benchmark
from .metrics import check_fpr_definition
from .report import format_tables, metric_rows, save_scores, write_csv
from .scoring import EvalResult, evaluate

__all__ = ["EvalOptions", "EvalOutputs", "run"]


@dataclasses.dataclass
class EvalOptions:
    """The settings of one evaluation (the command line's flags)."""

    benchmark: Optional[str] = None
    data_root: Optional[str] = None
    arch: Optional[str] = None
    checkpoint: Optional[str] = None
    num_classes: Optional[int] = None
    methods: Optional[str] = None
    baselines: str = "auto"
    out: Optional[str] = None
    device: Optional[str] = None
    batch_size: int = 128
    max_samples: Optional[int] = None
    seed: int = 0
    fpr_definition: str = "main"
    cache_dir: Optional[str] = None
    threads: Optional[int] = None
    plots: bool = True
    progress: bool = True


@dataclasses.dataclass
class EvalOutputs:
    """What a run produced: the result, the table text and the files written."""

    result: EvalResult
    text: str
    folder: str
    files: Dict[str, str]


def _load(options: EvalOptions) -> Tuple[Benchmark, nn.Module, Dict[str, object]]:
    if options.benchmark is None:
        if options.arch or options.checkpoint or options.data_root:
            raise ValueError(
                "--arch, --checkpoint and --data-root describe your own benchmark; give it with "
                "--benchmark FOLDER (without --benchmark the embedded digits benchmark runs with its own model)."
            )
        from .digits import digits_benchmark, digits_model

        benchmark = digits_benchmark()
        model, info = digits_model(benchmark, cache=options.cache_dir, progress=options.progress)
        return benchmark, model, {"arch": "DigitsResNet, a ResNet-8 for 1x8x8 digits", **info}

    benchmark = load_benchmark(options.benchmark, options.data_root)
    if not options.arch or not options.checkpoint:
        from ..models import architecture_names

        raise ValueError(
            "a benchmark folder needs the model: give --arch NAME and --checkpoint FILE "
            f"(architectures: {', '.join(architecture_names())})."
        )
    from ..models import build_model, load_checkpoint

    num_classes = options.num_classes or benchmark.num_classes
    model = build_model(options.arch, num_classes)
    load_checkpoint(model, options.checkpoint)
    return benchmark, model, {"arch": options.arch, "checkpoint": os.path.abspath(options.checkpoint), "num_classes": num_classes}


def _default_folder(benchmark: Benchmark, options: EvalOptions) -> str:
    name = benchmark.name if options.benchmark is None else f"{benchmark.name}-{options.arch.replace(':', '-')}"
    return os.path.join("runs", name)


@contextlib.contextmanager
def _torch_threads(count: Optional[int]) -> Iterator[None]:
    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def run(options: EvalOptions) -> EvalOutputs:
    """Run one evaluation and write its files; returns the result and the printed table.

    ``options.threads`` sets PyTorch's CPU threads for the run (default: PyTorch's own
    choice; the embedded default uses one, because its 8 x 8 tensors are too small to gain
    from more and several threads slow down badly when other processes load the CPU).

    Raises ValueError / FileNotFoundError / ImportError with a message naming the problem
    (bad benchmark, checkpoint that does not fit, unknown method or architecture, ...).
    """
    if options.threads is not None and options.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {options.threads}")
    threads = options.threads if options.threads is not None else (1 if options.benchmark is None else None)
    with _torch_threads(threads):
        return _run(options)


def _run(options: EvalOptions) -> EvalOutputs:
    start = time.perf_counter()
    check_fpr_definition(options.fpr_definition)
    if options.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {options.batch_size}")
    from .methods import resolve_methods

    keys = resolve_methods(options.methods)  # fail on a typo before any work
    device = resolve_device(options.device)
    benchmark, model, model_info = _load(options)
    full_sizes = {s.name: len(s) for s in benchmark.sets()}
    benchmark = benchmark.subsample(options.max_samples, options.seed)
    result = evaluate(
        model,
        benchmark,
        keys,
        device=device,
        batch_size=options.batch_size,
        backend=options.baselines,
        progress=options.progress,
    )
    folder = options.out or _default_folder(benchmark, options)
    os.makedirs(folder, exist_ok=True)
    rows = metric_rows(result, options.fpr_definition)
    model_line = model_info["arch"] + (f", {os.path.basename(str(model_info['checkpoint']))}" if "checkpoint" in model_info else "")
    title = f"GAIA and baselines on {benchmark.name} ({model_line})"
    files = {
        "csv": os.path.join(folder, "metrics.csv"),
        "markdown": os.path.join(folder, "table.md"),
        "scores": os.path.join(folder, "scores.npz"),
        "summary": os.path.join(folder, "summary.json"),
    }
    write_csv(rows, files["csv"])
    table = dict(fpr_definition=options.fpr_definition, title=title, descriptions=benchmark.description)
    with open(files["markdown"], "w") as handle:
        handle.write(format_tables(result, rows, markdown=True, **table))
    save_scores(result, files["scores"], options.fpr_definition)
    if options.plots:
        from .plots import plot_roc, plot_scores

        files["score_plot"] = os.path.join(folder, "scores.png")
        files["roc_plot"] = os.path.join(folder, "roc.png")
        plot_scores(result, files["score_plot"], title=f"{benchmark.name}, {model_line}: confidence distributions, ID vs OOD")
        plot_roc(result, files["roc_plot"], title=f"{benchmark.name}, {model_line}: ROC curves (OOD positive; dotted: 95% OOD recall)")
    text = format_tables(result, rows, markdown=False, **table)
    summary = {
        "options": dataclasses.asdict(options),
        "benchmark": benchmark.name,
        "benchmark_path": os.path.abspath(options.benchmark) if options.benchmark else "embedded (scikit-learn digits)",
        "model": model_info,
        "sets": [{"name": n, "group": g, "scored": size, "available": full_sizes[n]} for n, g, size in result.sets],
        "id_train": len(benchmark.id_train) if benchmark.id_train is not None else 0,
        "max_samples": options.max_samples,
        "subsample_seed": options.seed,
        "methods": [dataclasses.asdict(m) for m in result.methods],
        "skipped": result.skipped,
        "notes": result.notes,
        "fpr_definition": options.fpr_definition,
        "id_accuracy": result.accuracy,
        "device": result.device,
        "batch_size": options.batch_size,
        "seconds": {**{k: round(v, 3) for k, v in result.seconds.items()}, "total": round(time.perf_counter() - start, 3)},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "versions": {p: installed_version(p) for p in ("gaia-openood", "torch", "torchvision", "pytorch-ood", "scikit-learn", "numpy")},
    }
    with open(files["summary"], "w") as handle:
        json.dump(summary, handle, indent=2, default=str)
    return EvalOutputs(result=result, text=text, folder=folder, files=files)
