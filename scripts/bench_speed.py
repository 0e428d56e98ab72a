#!/usr/bin/env python
"""Speed and memory of GAIA-Z and GAIA-A, side by side with MSP and a naive GAIA.

Times, in one run and interleaved on the same batches:

* ``msp``: one forward pass under ``torch.no_grad`` (the floor any post-hoc method pays);
* ``gaia_z``, ``gaia_a``: this package;
* ``naive_gaia_z``, ``naive_gaia_a``: GAIA written the way the published code works
  (tensor hooks, ``.backward()`` computing every parameter gradient, two backward passes
  for GAIA-A), written here for the comparison;
* ``gaia_a_autograd``: GAIA-A with its output component from a backward pass instead of
  the closed form (what the closed form buys);
* ``approx_gaia_z``: the opt-in forward-only approximation (``ApproxGAIAZ``).

Each method is timed ``--repeats`` times (median reported) after a warm-up, in a rotating
order so that no method always runs first. Peak memory is measured per method in a fresh
subprocess. The naive and exact scores are checked to agree before anything is timed.
With ``--cifar10-mini`` (default: ../shared/data/cifar10-mini when present) it also reports
how far the approximation's scores and AUROC are from exact GAIA-Z on real data.

    python scripts/bench_speed.py                   # CPU, writes docs/benchmarks.md
    python scripts/bench_speed.py --device cuda --output docs/benchmarks-cuda.md
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Union

import numpy as np
import torch
import torchvision
from torch import nn

from gaia_openood import GAIAA, GAIAZ
from gaia_openood.detector import ApproxGAIAZ
from gaia_openood.models import ResNet18_32x32, build_model, load_checkpoint

CONFIGS = {
    "resnet18_32x32": {"build": lambda: ResNet18_32x32(num_classes=10), "batch": 128, "size": 32},
    "resnet50": {"build": lambda: torchvision.models.resnet50(num_classes=1000), "batch": 16, "size": 224, "micro_batch": 4},
}
METHODS = ["msp", "gaia_z", "gaia_a", "gaia_a_autograd", "naive_gaia_z", "naive_gaia_a", "approx_gaia_z"]


# --- the naive GAIA, in the published style ------------------------------------------

def _hook_outputs(model: nn.Module, names: List[str], grads: Dict[str, torch.Tensor], keep: Dict[str, torch.Tensor]):
    handles = []

    def tap(name: str):
        def hook(module, inputs, output):
            keep[name] = output
            output.register_hook(lambda g: grads.__setitem__(name, g))

        return hook

    for name in names:
        handles.append(model.get_submodule(name).register_forward_hook(tap(name)))
    return handles


def naive_gaia_z(model: nn.Module, x: torch.Tensor, names: List[str]) -> torch.Tensor:
    grads: Dict[str, torch.Tensor] = {}
    handles = _hook_outputs(model, names, grads, {})
    try:
        model.zero_grad(set_to_none=True)
        logits = model(x)
        logits.max(dim=1).values.sum().backward()
    finally:
        for handle in handles:
            handle.remove()
    rho = [(grads[name] != 0).float().mean(dim=(2, 3)) for name in names]
    return -torch.cat(rho, dim=1).pow(2).mean(dim=1)


def naive_gaia_a(model: nn.Module, x: torch.Tensor, names: List[str], output: str) -> torch.Tensor:
    grads: Dict[str, torch.Tensor] = {}
    keep: Dict[str, torch.Tensor] = {}
    handles = _hook_outputs(model, names + [output], grads, keep)
    try:
        model.zero_grad(set_to_none=True)
        logits = model(x)
        torch.log_softmax(logits, dim=1).sum().backward(retain_graph=True)
        g = grads[output].mean(dim=(2, 3))
        keep[output].mean(dim=(2, 3)).sum().backward()
    finally:
        for handle in handles:
            handle.remove()
    w = torch.cat([grads[name].mean(dim=(2, 3)) for name in names], dim=1)
    return -(w.pow(2).mean(dim=1) / g.abs().mean(dim=1))


def make_methods(model: nn.Module, x: torch.Tensor, micro_batch: Union[int, str, None] = "auto") -> Dict[str, Callable[[], torch.Tensor]]:
    gaia_z = GAIAZ(model, micro_batch_size=micro_batch)
    gaia_a = GAIAA(model, micro_batch_size=micro_batch)
    gaia_a_autograd = GAIAA(model, output_gradient="autograd", micro_batch_size=micro_batch)
    approx = ApproxGAIAZ(model, micro_batch_size=micro_batch)
    z_names = list(gaia_z.layers(x).hooked)
    a_layers = gaia_a.layers(x)

    def msp() -> torch.Tensor:
        with torch.no_grad():
            return torch.softmax(model(x), dim=1).max(dim=1).values

    return {
        "msp": msp,
        "gaia_z": lambda: gaia_z.score(x),
        "gaia_a": lambda: gaia_a.score(x),
        "gaia_a_autograd": lambda: gaia_a_autograd.score(x),
        "naive_gaia_z": lambda: naive_gaia_z(model, x, z_names),
        "naive_gaia_a": lambda: naive_gaia_a(model, x, list(a_layers.hooked), a_layers.output),
        "approx_gaia_z": lambda: approx.score(x),
    }


# --- timing ------------------------------------------------------------------------------

def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def setup(config: str, device: torch.device, seed: int = 0):
    torch.manual_seed(seed)
    spec = CONFIGS[config]
    model = spec["build"]().to(device).eval()
    x = torch.randn(spec["batch"], 3, spec["size"], spec["size"], device=device)
    return model, x


def time_methods(config: str, device: torch.device, repeats: int, warmup: int) -> Dict[str, List[float]]:
    model, x = setup(config, device)
    methods = make_methods(model, x)
    ours_z, naive_z = methods["gaia_z"](), methods["naive_gaia_z"]()
    ours_a, naive_a = methods["gaia_a"](), methods["naive_gaia_a"]()
    for name, ours, naive in (("GAIA-Z", ours_z, naive_z), ("GAIA-A", ours_a, naive_a)):
        diff = float(((ours - naive).abs() / naive.abs()).max())
        if diff > 1e-4:
            raise SystemExit(f"{config}: {name} disagrees with the naive implementation (max rel diff {diff:.2e})")
    for _ in range(warmup):
        for run in methods.values():
            run()
    times: Dict[str, List[float]] = {name: [] for name in METHODS}
    for repeat in range(repeats):
        order = METHODS[repeat % len(METHODS):] + METHODS[: repeat % len(METHODS)]
        for name in order:
            synchronize(device)
            start = time.perf_counter()
            methods[name]()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
        print(f"  {config}: repeat {repeat + 1}/{repeats} done", file=sys.stderr)
    return times


# --- memory (one fresh process per measurement) ----------------------------------------------

def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_probe(config: str, method: str, device: torch.device, micro_batch: Union[int, str, None]) -> float:
    """Peak memory (MiB) one call of ``method`` needs above the loaded model and batch."""
    model, x = setup(config, device)
    run = make_methods(model, x, micro_batch)[method]
    if device.type == "cuda":
        synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        run()
        synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    base = _rss_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as handle:  # resets the peak (VmHWM) to now
        handle.write("5")
    run()
    return (_rss_kib("VmHWM") - base) / 1024


def measure_memory(config: str, method: str, device: torch.device, micro_batch: Union[int, str, None] = "auto") -> float:
    command = [sys.executable, os.path.abspath(__file__), "--memory-probe", config, method, "--device", str(device),
               "--micro-batch", str(micro_batch)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(json.loads(result.stdout.strip().splitlines()[-1])["peak_mib"])


# --- the approximation on real data -----------------------------------------------------------

def approximation_report(folder: str, device: torch.device, samples: int) -> str:
    from sklearn.metrics import roc_auc_score

    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def images(path: str) -> torch.Tensor:
        x = np.load(path)["x"]
        rng = np.random.default_rng(0)
        pick = np.sort(rng.choice(len(x), size=min(samples, len(x)), replace=False))
        return ((torch.from_numpy(x[pick]).permute(0, 3, 1, 2).float() / 255 - mean) / std).to(device)

    sets = {"tin (near)": images(f"{folder}/ood/tin.npz"), "dtd10 (far)": images(f"{folder}/ood/dtd10.npz")}
    x_id = images(f"{folder}/test.npz")
    lines = [
        "| model | OOD set | AUROC exact GAIA-Z | AUROC approximation | Spearman rho (all scores) | max relative score difference |",
        "|---|---|---|---|---|---|",
    ]
    for arch in ("resnet20", "resnet56"):
        model = load_checkpoint(build_model(arch), f"{folder}/weights/{arch}_cifar10jpg.pt").to(device).eval()
        exact, approx = GAIAZ(model, micro_batch_size=250), ApproxGAIAZ(model, micro_batch_size=250)
        id_exact, id_approx = exact.score(x_id).cpu().numpy(), approx.score(x_id).cpu().numpy()
        for name, x_ood in sets.items():
            ood_exact, ood_approx = exact.score(x_ood).cpu().numpy(), approx.score(x_ood).cpu().numpy()
            labels = np.r_[np.ones(len(id_exact)), np.zeros(len(ood_exact))]
            all_exact, all_approx = np.r_[id_exact, ood_exact], np.r_[id_approx, ood_approx]
            ranks = lambda v: np.argsort(np.argsort(v))
            spearman = float(np.corrcoef(ranks(all_exact), ranks(all_approx))[0, 1])
            rel = float(np.max(np.abs(all_approx - all_exact) / np.abs(all_exact)))
            lines.append(
                f"| {arch} | {name} | {100 * roc_auc_score(labels, all_exact):.2f} | "
                f"{100 * roc_auc_score(labels, all_approx):.2f} | {spearman:.3f} | {rel:.3f} |"
            )
    return "\n".join(lines)


# --- report -------------------------------------------------------------------------------

def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def speed_table(config: str, times: Dict[str, List[float]], memory: Dict[str, float]) -> str:
    batch = CONFIGS[config]["batch"]
    median = {name: statistics.median(values) for name, values in times.items()}
    rows = [
        "| method | images/s | median s/batch | time / MSP | speed-up over naive | peak memory (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for name in METHODS:
        naive = {"gaia_z": "naive_gaia_z", "gaia_a": "naive_gaia_a", "gaia_a_autograd": "naive_gaia_a",
                 "approx_gaia_z": "naive_gaia_z"}.get(name)
        speedup = f"{median[naive] / median[name]:.2f}x" if naive else ""
        rows.append(
            f"| {name} | {batch / median[name]:.1f} | {median[name]:.3f} | {median[name] / median['msp']:.2f}x | "
            f"{speedup} | {memory.get(name, float('nan')):.0f} |"
        )
    return "\n".join(rows)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--output", default="docs/benchmarks.md")
    default_mini = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "cifar10-mini")
    parser.add_argument("--cifar10-mini", default=default_mini if os.path.isdir(default_mini) else None)
    parser.add_argument("--approx-samples", type=int, default=1000)
    parser.add_argument("--memory-probe", nargs=2, metavar=("CONFIG", "METHOD"), help=argparse.SUPPRESS)
    parser.add_argument("--micro-batch", default="auto", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.memory_probe:
        micro = {"auto": "auto", "None": None}[args.micro_batch] if args.micro_batch in ("auto", "None") else int(args.micro_batch)
        print(json.dumps({"peak_mib": memory_probe(*args.memory_probe, device, micro)}))
        return 0
    if args.repeats < 5:
        print("note: fewer than 5 repeats; medians are less reliable", file=sys.stderr)

    sections = []
    for config in args.configs:
        spec = CONFIGS[config]
        print(f"timing {config} (batch {spec['batch']}, {spec['size']}x{spec['size']}) ...", file=sys.stderr)
        times = time_methods(config, device, args.repeats, args.warmup)
        memory = {name: measure_memory(config, name, device) for name in METHODS}
        table = speed_table(config, times, memory)
        section = f"### {config}, batch {spec['batch']}, {spec['size']}x{spec['size']}\n\n{table}\n"
        if config == "resnet50":
            micro = spec["micro_batch"]
            lines = [f"| method | whole batch (`micro_batch_size=None`) | `'auto'` (default) | `micro_batch_size={micro}` |",
                     "|---|---|---|---|"]
            for name in ("gaia_z", "gaia_a"):
                whole, fixed = measure_memory(config, name, device, None), measure_memory(config, name, device, micro)
                lines.append(f"| {name} | {whole:.0f} | {memory[name]:.0f} | {fixed:.0f} |")
            section += ("\nPeak memory (MiB) by micro-batch setting (scores never change; see "
                        "tests/test_model_safety.py):\n\n" + "\n".join(lines) + "\n")
        print(section)
        sections.append(section)

    approx = ""
    if args.cifar10_mini:
        print("approximation on cifar10-mini ...", file=sys.stderr)
        approx = approximation_report(args.cifar10_mini, device, args.approx_samples)
        print(approx)

    header = (
        "# Speed and memory\n\n"
        f"Measured {datetime.date.today().isoformat()} with "
        f"`{' '.join(['python scripts/bench_speed.py', *(argv if argv is not None else sys.argv[1:])])}`.\n\n"
        f"- machine: {cpu_name()}, {os.cpu_count()} logical CPUs"
        + (f", GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else "")
        + f"\n- torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"{torch.get_num_threads()} intra-op threads, device {device}\n"
        f"- median of {args.repeats} interleaved repeats after {args.warmup} warm-up; random weights and inputs "
        "(speed does not depend on them); peak memory = peak resident memory (CPU) or allocated memory (CUDA) "
        "of one call above the loaded model and batch, each in a fresh process\n"
        "- naive = GAIA as the published code computes it: tensor hooks, `.backward()` with every parameter "
        "gradient, two backward passes for GAIA-A; its scores are checked equal to ours before timing\n"
    )
    body = header + "\n## Speed\n\n" + "\n".join(sections)
    if approx:
        body += (
            "\n## Forward-only approximation of GAIA-Z (opt-in `ApproxGAIAZ`)\n\n"
            f"On cifar10-mini ({args.approx_samples} ID test images and {args.approx_samples} images of each OOD "
            "set, fixed seed), exact GAIA-Z against the approximation:\n\n" + approx + "\n"
        )
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        previous = ""
        if os.path.exists(args.output):
            with open(args.output) as handle:
                text = handle.read()
            marker = "\n## Optimisation log"
            previous = text[text.index(marker):] if marker in text else ""
        with open(args.output, "w") as handle:
            handle.write(body + previous)
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
