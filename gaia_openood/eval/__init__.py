"""The offline evaluation front end: ``gaia-openood eval``.

GAIA-Z and GAIA-A against baselines from a maintained library (OpenOOD's postprocessors when
OpenOOD is installed, pytorch-ood's detectors otherwise), with OpenOOD's metrics, on an
embedded benchmark or on any benchmark folder of npz files.

One job a module:

* :mod:`~gaia_openood.eval.benchmark`: the npz folder format, its validation, preprocessing;
* :mod:`~gaia_openood.eval.digits`: the embedded default (scikit-learn digits) and its model;
* :mod:`~gaia_openood.eval.network`: the shared forward pass (logits, penultimate feature);
* :mod:`~gaia_openood.eval.methods`: the method registry, GAIA and pytorch-ood baselines;
* :mod:`~gaia_openood.eval.openood_baselines`: the same baselines from OpenOOD;
* :mod:`~gaia_openood.eval.scoring`: scoring every set with every method;
* :mod:`~gaia_openood.eval.metrics`: AUROC, FPR@95, AUPR-IN, AUPR-OUT as OpenOOD defines them;
* :mod:`~gaia_openood.eval.report`: tables (text, Markdown, CSV) and ``scores.npz``;
* :mod:`~gaia_openood.eval.plots`: score distributions and ROC curves;
* :mod:`~gaia_openood.eval.command`: the command end to end.

    >>> from gaia_openood.eval import EvalOptions, run
    >>> print(run(EvalOptions()).text)                 # the embedded default  # doctest: +SKIP
"""
from .benchmark import Benchmark, BenchmarkError, ImageSet, load_benchmark
from .command import EvalOptions, EvalOutputs, run
from .metrics import OODMetrics, ood_metrics
from .scoring import EvalResult, evaluate

__all__ = [
    "Benchmark",
    "BenchmarkError",
    "ImageSet",
    "load_benchmark",
    "EvalOptions",
    "EvalOutputs",
    "run",
    "OODMetrics",
    "ood_metrics",
    "EvalResult",
    "evaluate",
]
