"""Run OpenOOD's Evaluator for every (postprocessor, run) of a benchmark and write the results.

The module that drives OpenOOD (imported lazily, when a run starts). The steps, in order:

1. :func:`prepare`: every check of :mod:`.preflight` and every network built and loaded,
   so a missing piece stops the run before any evaluation;
2. for each postprocessor and each run: the cached result if its fingerprint matches, else
   OpenOOD's ``Evaluator`` (its chatter goes to ``logs/``), inside :func:`openood_scope`;
3. after each postprocessor: its OpenOOD CSV, per-sample scores, the side-by-side
   summary, the leaderboard files and ``run_<task>.json``.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import json
import os
import sys
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Iterator, List, Mapping, Optional, TextIO

import torch
from torch import nn

from .. import __version__
from ..versions import installed_version
from .benchmarks import IMAGENET_ARCHS, Benchmark, display_name
from .cache import ResultCache
from .device import needs_cuda_message, openood_device, resolve_device
from .fingerprint import code_digest, file_digest, files_digest
from .leaderboard import EntryInfo, write_leaderboard
from .options import RunnerOptions
from .preflight import (DataLayout, PreflightError, Problem, Run, check_config_files, check_configs, check_data,
                        check_methods, find_seed_runs, image_lists, reads_training_split, require_openood,
                        weight_runs)
from .results import Aggregate, MetricsTable, aggregate, write_openood_csv, write_summary
from .score_files import score_splits, write_score_files

__all__ = ["Plan", "JobResult", "RunReport", "prepare", "openood_scope", "run_benchmark"]

# OpenOOD's registries import every postprocessor: their files count, their imports are not followed
_REGISTRIES = ("openood.evaluation_api.postprocessor", "openood.postprocessors.utils")


@dataclass
class Plan:
    """A checked run: networks loaded, configs and classes resolved, fingerprints ready."""

    options: RunnerOptions
    spec: Benchmark
    layout: DataLayout
    device: torch.device
    runs: List[Run]
    networks: Dict[str, nn.Module]
    classes: Dict[str, type]
    config_paths: Dict[str, str]
    preprocessor: Any
    arch_label: str
    _code: Dict[str, str] = field(default_factory=dict, init=False, repr=False)
    _lists: Optional[str] = field(default=None, init=False, repr=False)

    def fingerprint(self, method: str, run: Run) -> Dict[str, Any]:
        """What the cached work of ``method`` on ``run`` depends on (see the README)."""
        import openood.evaluation_api.evaluator as evaluator_module
        import torchvision

        network = self.networks[run.name]
        if method not in self._code:
            self._code[method] = code_digest([self.classes[method], type(network), evaluator_module],
                                             stop=_REGISTRIES)
        if self._lists is None:
            paths = [os.path.join(self.options.data_root, entry.imglist_path)
                     for entry in image_lists(self.layout.data_info, self.spec.id_name)]
            self._lists = files_digest(paths)
        return {
            "format": 1,
            "gaia_openood": __version__,
            "openood": installed_version("openood", missing="unknown"),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "method": method,
            "code": self._code[method],
            "config": file_digest(self.config_paths[method]),
            "network": f"{type(network).__module__}.{type(network).__qualname__}",
            "checkpoint": file_digest(run.checkpoint),
            "id_data": self.spec.id_name,
            "data_root": os.path.abspath(self.options.data_root),
            "image_lists": self._lists,
            "preprocessor": "OpenOOD default" if self.preprocessor is None else repr(self.preprocessor),
            "batch_size": self.options.batch_size,
        }


@dataclass
class JobResult:
    """One (method, run): its metrics, or the error that stopped it, and where it came from."""

    method: str
    run: str
    metrics: Optional[MetricsTable]
    cache: str
    reason: str
    log: str
    error: Optional[str] = None


@dataclass
class RunReport:
    """Everything one runner invocation did and wrote."""

    plan: Plan
    jobs: List[JobResult] = field(default_factory=list)
    results: Dict[str, Aggregate] = field(default_factory=dict)
    failed: Dict[str, str] = field(default_factory=dict)
    files: Dict[str, List[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


def _network_factory(options: RunnerOptions, spec: Benchmark) -> tuple:
    """(build function, preprocessor, leaderboard arch) as OpenOOD's scripts choose them."""
    import openood.networks as networks

    if spec.uses_root:
        cls = getattr(networks, spec.network)
        return (lambda: cls(num_classes=spec.num_classes)), None, spec.arch_label
    arch = IMAGENET_ARCHS[options.arch]
    cls = getattr(networks, arch.network)
    if options.arch == "resnet50":  # scripts/eval_ood_imagenet.py with --ckpt-path
        from torchvision import transforms as trn

        preprocessor = trn.Compose([
            trn.Resize(256), trn.CenterCrop(224), trn.ToTensor(),
            trn.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ])
    else:  # the preprocessing of the torchvision weights OpenOOD evaluates (no download)
        import torchvision

        preprocessor = torchvision.models.get_weight(arch.weights).transforms()
    return cls, preprocessor, arch.arch_label


def _weights_hint(arch_name: str) -> str:
    import torchvision

    weights = torchvision.models.get_weight(IMAGENET_ARCHS[arch_name].weights)
    return (f"download torchvision's {IMAGENET_ARCHS[arch_name].weights} weights: "
            f"wget {weights.url} -P results/pretrained_weights/ (then --ckpt-path that file)")


def prepare(options: RunnerOptions) -> Plan:
    """Validate the options and check everything the run needs; load the networks.

    Raises ValueError for inconsistent options and :class:`PreflightError` listing every
    missing piece (OpenOOD, postprocessor, config, data, checkpoint) with its fix.
    """
    from ..models import load_checkpoint

    spec = options.validate()
    require_openood()
    device = resolve_device(options.device)
    from openood.evaluation_api import postprocessor as api

    from .. import openood as adapters

    registry = {**api.postprocessors, **adapters.POSTPROCESSORS}
    methods = options.methods
    problems: List[Problem] = check_methods(methods, registry)
    usable = [m for m in methods if m in registry]
    problems += check_configs(options.config_root, usable, packaged=adapters.POSTPROCESSORS)
    config_paths = {m: adapters.postprocessor_config(options.config_root, m) for m in usable}

    def check_config(method: str, path: str) -> None:
        if method in adapters.POSTPROCESSORS:
            adapters.POSTPROCESSORS[method](path)  # GAIA's own validation of its options
        else:
            adapters.check_config_file(path)

    problems += check_config_files({m: p for m, p in config_paths.items() if os.path.isfile(p)}, check_config)
    layout = DataLayout.from_openood()
    needs_train = any(reads_training_split(registry[m]) for m in usable)
    problems += check_data(layout, spec, options.data_root, fsood=options.fsood, needs_train=needs_train)
    if spec.uses_root:
        runs, run_problems = find_seed_runs(options.root, spec, options.seeds)
    else:
        runs, run_problems = weight_runs(options.ckpt_paths, _weights_hint(options.arch))
    problems += run_problems
    if problems:
        raise PreflightError(problems)

    build, preprocessor, arch_label = _network_factory(options, spec)
    networks: Dict[str, nn.Module] = {}
    for run in runs:
        try:
            networks[run.name] = load_checkpoint(build(), run.checkpoint).to(device).eval()
        except (ValueError, RuntimeError, OSError) as error:
            problems.append(Problem(f"checkpoint {run.checkpoint} cannot be loaded: {error}",
                                    "check --id-data (and --arch) against the checkpoint"))
    if problems:
        raise PreflightError(problems)
    return Plan(
        options=options, spec=spec, layout=layout, device=device, runs=runs, networks=networks,
        classes={m: registry[m] for m in methods},
        config_paths=config_paths,
        preprocessor=preprocessor, arch_label=options.arch_label or arch_label,
    )


@contextlib.contextmanager
def _swapped(owner: Any, name: str, value: Any) -> Iterator[None]:
    original = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


@contextlib.contextmanager
def openood_scope(plan: Plan) -> Iterator[None]:
    """For the block: GAIA registered, OpenOOD's ``.cuda()`` on the plan's device, downloads
    refused, and (without progress) the evaluator's accuracy bar silenced; all undone after."""
    import openood.evaluation_api.evaluator as evaluator_module
    from openood.evaluation_api import postprocessor as api

    from .. import openood as adapters

    def no_download_setup(data_root: str, id_name: str) -> None:
        problems = check_data(plan.layout, plan.spec, data_root, fsood=plan.options.fsood)
        if problems:  # something vanished since the preflight: never let OpenOOD download it
            raise PreflightError(problems)

    registered = all(name in api.postprocessors for name in adapters.POSTPROCESSORS)
    with contextlib.ExitStack() as stack:
        adapters.register()
        if not registered:
            stack.callback(adapters.unregister)
        stack.enter_context(_swapped(evaluator_module, "data_setup", no_download_setup))
        if not plan.options.progress:  # eval_acc shows a bar whatever eval_ood's progress says
            quiet = functools.partial(evaluator_module.tqdm, disable=True)
            stack.enter_context(_swapped(evaluator_module, "tqdm", quiet))
        stack.enter_context(openood_device(plan.device))
        yield


def _merge(target: Dict[str, Any], source: Mapping[str, Any]) -> Dict[str, Any]:
    """OpenOOD's ``update``: nested dicts merged, everything else replaced."""
    for key, value in source.items():
        if isinstance(value, Mapping):
            target[key] = _merge(dict(target.get(key) or {}), value)
        else:
            target[key] = value
    return target


def _evaluate(plan: Plan, method: str, run: Run, cache: ResultCache, log_path: str) -> JobResult:
    from openood.evaluation_api import Evaluator

    options = plan.options
    entry = cache.entry(method, run.name, plan.fingerprint(method, run))
    lookup = cache.load(entry)
    net = copy.deepcopy(plan.networks[run.name])  # no postprocessor sees another's network
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as log, contextlib.redirect_stdout(log):
        print(f"# {method} on {run.name} ({run.checkpoint}); cache: {lookup.status} {lookup.reason}".rstrip())
        try:
            evaluator = Evaluator(
                net, id_name=plan.spec.id_name, data_root=options.data_root, config_root=options.config_root,
                preprocessor=plan.preprocessor, postprocessor_name=method, postprocessor=lookup.postprocessor,
                batch_size=options.batch_size, shuffle=False, num_workers=options.num_workers,
            )
            if lookup.scores is not None:
                _merge(evaluator.scores, lookup.scores)
            frame = evaluator.eval_ood(fsood=options.fsood, progress=options.progress)
        except Exception as error:
            traceback.print_exc(file=log)
            hint = needs_cuda_message(error) if plan.device.type != "cuda" else None
            message = f"{type(error).__name__}: {error}" + (f" ({hint})" if hint else "")
            return JobResult(method, run.name, None, lookup.status, lookup.reason, log_path, message)
    postprocessor = evaluator.postprocessor
    # what OpenOOD's scripts/eval_ood.py pickles: set-up or hyperparameter-searched postprocessors
    keep = hasattr(postprocessor, "setup_flag") or postprocessor.hyperparam_search_done is True
    warning = None
    if not lookup.hit or options.fsood:  # a full-spectrum run may have added the csid scores
        warning = cache.save(entry, evaluator.scores, postprocessor if keep else None)
    folder = os.path.join(options.output, "scores", method, run.name)
    write_score_files(folder, score_splits(evaluator.scores, evaluator.dataloader_dict, plan.spec.id_name))
    reason = lookup.reason + (f"; {warning}" if warning else "")
    return JobResult(method, run.name, MetricsTable.from_frame(frame), lookup.status, reason, log_path)


def _write_reports(report: RunReport, method_csvs: Dict[str, str]) -> None:
    plan, options = report.plan, report.plan.options
    names = {method: display_name(method) for method in report.results}
    files: Dict[str, List[str]] = {"method_csvs": [method_csvs[m] for m in report.results]}
    if report.results:
        runs = ", ".join(run.name for run in plan.runs)
        form = "single model" if next(iter(report.results.values())).plain else "mean ± std over runs"
        title = f"OpenOOD {plan.spec.id_name} ({options.task}), {len(plan.runs)} run(s): {runs}; {form}"
        files["summary"] = list(write_summary(os.path.join(options.output, f"summary_{options.task}"),
                                              report.results, names, title))
        info = EntryInfo(options.training, options.outlier_data, plan.arch_label,
                         options.description if options.description is not None else plan.spec.description)
        files["leaderboard"] = write_leaderboard(os.path.join(options.output, "leaderboard"),
                                                 plan.spec.leaderboard_file(options.fsood), report.results,
                                                 names, method_csvs, info)
    record = {
        "gaia_openood": __version__,
        "options": {k: v for k, v in asdict(options).items() if k != "methods"},
        "device": str(plan.device),
        "runs": [asdict(run) for run in plan.runs],
        "config_paths": plan.config_paths,
        "jobs": [{**{k: v for k, v in asdict(job).items() if k != "metrics"},
                  "metrics": job.metrics.to_dict() if job.metrics else None} for job in report.jobs],
        "failed": report.failed,
    }
    path = os.path.join(options.output, f"run_{options.task}.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=1, default=str)
    files["record"] = [path]
    report.files = files


def _describe(job: JobResult) -> str:
    source = {"hit": "cached"}.get(job.cache, "computed" + (f" ({job.reason})" if job.reason else ""))
    if job.error:
        return f"{job.method} {job.run}: FAILED: {job.error} (log: {job.log})"
    m = job.metrics
    return (f"{job.method} {job.run}: {source}; AUROC near {m.value('nearood', 'AUROC'):.2f}, "
            f"far {m.value('farood', 'AUROC'):.2f}; ACC {m.value('nearood', 'ACC'):.2f}")


def run_benchmark(options: RunnerOptions, console: Optional[TextIO] = None) -> RunReport:
    """Evaluate every postprocessor of ``options`` on every run and write all result files.

    Raises ValueError / :class:`PreflightError` before any work when something is missing.
    A postprocessor that fails is reported (``report.failed``, its log under ``logs/``)
    and the others still run. One line per run goes to ``console`` (stdout), progress bars
    to stderr.
    """
    from tqdm.auto import tqdm

    console = console or sys.stdout
    plan = prepare(options)
    report = RunReport(plan)
    cache = ResultCache(os.path.join(options.output, "cache", options.task), enabled=options.cache,
                        refresh=options.recompute)
    method_csvs: Dict[str, str] = {}
    jobs = tqdm(total=len(options.methods) * len(plan.runs), desc="runs", unit="run",
                disable=not options.progress)
    with jobs, openood_scope(plan):
        for method in options.methods:
            tables = []
            for run in plan.runs:
                jobs.set_description(f"{method} {run.name}")
                log = os.path.join(options.output, "logs", f"{options.task}_{method}_{run.name}.log")
                job = _evaluate(plan, method, run, cache, log)
                report.jobs.append(job)
                jobs.update(1)
                jobs.write(_describe(job), file=console)
                if job.error:
                    report.failed[method] = f"{run.name}: {job.error}"
                    jobs.update(len(plan.runs) - len(tables) - 1)
                    break
                tables.append(job.metrics)
            else:
                plain = not plan.spec.uses_root and len(tables) == 1  # as scripts/eval_ood_imagenet.py
                report.results[method] = aggregate(tables, plain=plain)
                method_csvs[method] = write_openood_csv(
                    os.path.join(options.output, options.task, f"{method}.csv"), report.results[method])
            _write_reports(report, method_csvs)
    return report
