"""Baselines from OpenOOD's own postprocessors (``--baselines openood``, the default when OpenOOD imports).

Each method builds one OpenOOD postprocessor with the settings of
:mod:`gaia_openood.eval.methods` (OpenOOD's default configs) and calls its ``setup`` and
``postprocess`` as OpenOOD's evaluator does; OpenOOD's ``conf`` is already higher = more
in-distribution, so no sign changes. The classifier is wrapped in :class:`OpenOODNet`,
which gives it the interface OpenOOD's networks have (``forward(x, return_feature=True)``,
``get_fc``, ``get_fc_layer``), and, for ReAct and ASH, in OpenOOD's own ``ReactNet`` /
``ASHNet``, as the evaluator wraps its networks.

Where OpenOOD's code cannot run as is:

* OpenOOD calls ``.cuda()`` (KNN and ReAct setup, GradNorm). While OpenOOD's code runs,
  those calls land on the evaluation's device (:func:`gaia_openood.runner.device.openood_device`).
* OpenOOD's ODIN hard-codes three input channels; for other inputs ODIN comes from
  pytorch-ood, and the report names the source.
* GradNorm reads the class count from OpenOOD's table of its own benchmarks; it is set from
  the model instead. (OpenOOD sums the cross-entropy to the uniform distribution over the
  classes where pytorch-ood averages it, so its scores are C times larger: same ranking,
  same metrics. Likewise OpenOOD's KNN returns the squared distance.)
* ReAct's threshold comes from the ID training subset (OpenOOD's evaluator uses its ID
  validation split), as with pytorch-ood.

OpenOOD is not a dependency of this package: this module is imported only when OpenOOD is,
and tested only where OpenOOD is importable (``tests/test_eval_openood.py``, marked
``openood``).
"""
from __future__ import annotations

import contextlib
import importlib
from typing import Any, ClassVar, Dict, Optional, Tuple, Type

import torch
from torch import Tensor, nn

from ..hooks import forward_hooks
from ..model_state import scoring_mode
from ..runner.device import openood_device
from . import methods as base
from .methods import Method, MethodContext
from .network import Batch

__all__ = ["OpenOODNet", "OPENOOD_METHODS"]


class OpenOODNet(nn.Module):
    """A classifier with the interface of OpenOOD's networks.

    ``forward(x)`` returns the logits; ``forward(x, return_feature=True)`` returns
    ``(logits, feature)``, the feature being the input of the linear head.
    """

    def __init__(self, model: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.model = model
        self.head = head

    def forward(self, x: Tensor, return_feature: bool = False, return_feature_list: bool = False):
        if return_feature_list:
            raise NotImplementedError("return_feature_list is not available for this network")
        if not return_feature:
            return self.model(x)
        kept: Dict[str, Tensor] = {}

        def keep(module: nn.Module, args: tuple, output: object) -> None:
            kept["feature"] = args[0]

        with forward_hooks([(self.head, keep)]):
            logits = self.model(x)
        return logits, kept["feature"]

    def get_fc(self) -> Tuple[Any, Any]:
        return self.head.weight.detach().cpu().numpy(), self.head.bias.detach().cpu().numpy()

    def get_fc_layer(self) -> nn.Linear:
        return self.head


class _Loader:
    """The ID training subset as OpenOOD-style batches (``{'data', 'label'}``), re-iterable."""

    def __init__(self, context: MethodContext) -> None:
        self.context = context

    def __iter__(self):
        for x, y in self.context.train_batches():
            yield {"data": x, "label": y.to(x.device)}


class _OpenOOD(Method):
    """One OpenOOD postprocessor; subclasses name it, its arguments and its network wrapper."""

    source = "OpenOOD"
    postprocessor: ClassVar[str] = ""  # "module:Class" under openood.postprocessors
    args: ClassVar[Dict[str, Any]] = {}
    wrapper: ClassVar[Optional[str]] = None  # "module:Class" under openood.networks
    needs_grad: ClassVar[bool] = False

    def setup(self, context: MethodContext) -> None:
        from openood.utils import Config

        head = context.require_head(self.title)
        if self.fits:
            context.require_training_features(self.title)
        self.device = context.device
        self.net: nn.Module = OpenOODNet(context.model, head)
        if self.wrapper:
            self.net = _load("openood.networks", self.wrapper)(self.net)
        config = Config(
            {
                "dataset": {"name": "cifar10"},  # read only for lookups that are overridden below
                "postprocessor": {
                    "name": self.key,
                    "APS_mode": False,
                    "postprocessor_args": dict(self.args),
                    "postprocessor_sweep": {},
                },
            }
        )
        self.processor = _load("openood.postprocessors", self.postprocessor)(config)
        self.adapt(context)
        if self.fits:
            loader = _Loader(context)
            with openood_device(self.device):
                self.processor.setup(self.net, {"train": loader, "val": loader}, {})

    def adapt(self, context: MethodContext) -> None:
        """Fix what OpenOOD would look up in its own tables (after construction)."""

    def score(self, batch: Batch) -> Tensor:
        x = batch.x.detach().clone()  # OpenOOD may set requires_grad on its input
        grad = contextlib.nullcontext() if self.needs_grad else torch.no_grad()
        with openood_device(self.device), scoring_mode(self.net, warn_if_training=False), grad:
            _, conf = self.processor.postprocess(self.net, x)
        return torch.as_tensor(conf).float()


def _load(package: str, spec: str) -> Type:
    module, name = spec.split(":")
    return getattr(importlib.import_module(f"{package}.{module}"), name)


class MSP(_OpenOOD):
    key, title, settings = "msp", "MSP", base.MSP.settings
    postprocessor = "base_postprocessor:BasePostprocessor"


class MaxLogit(_OpenOOD):
    key, title, settings = "maxlogit", "MaxLogit", base.MaxLogit.settings
    postprocessor = "maxlogit_postprocessor:MaxLogitPostprocessor"


class Energy(_OpenOOD):
    key, title, settings = "energy", "Energy", base.Energy.settings
    postprocessor, args = "ebo_postprocessor:EBOPostprocessor", {"temperature": 1}


class ODIN(_OpenOOD):
    key, title, settings = "odin", "ODIN", base.ODIN.settings
    postprocessor, args, needs_grad = "odin_postprocessor:ODINPostprocessor", {"temperature": 1000, "noise": 0.0014}, True

    def setup(self, context: MethodContext) -> None:
        channels = int(context.view.input_shape[0])
        if channels != 3:
            # OpenOOD's ODIN scales the gradient of channels 0, 1 and 2 by name
            self.fallback: Optional[Method] = base.ODIN()
            self.fallback.setup(context)
            self.source = f"pytorch-ood (OpenOOD's ODIN needs 3 channels, the input has {channels})"
            return
        self.fallback = None
        super().setup(context)

    def adapt(self, context: MethodContext) -> None:
        self.processor.input_std = list(context.input_std) if context.input_std is not None else [1.0, 1.0, 1.0]

    def score(self, batch: Batch) -> Tensor:
        if self.fallback is not None:
            return self.fallback.score(batch)
        return super().score(batch)


class GradNorm(_OpenOOD):
    key, title, settings = "gradnorm", "GradNorm", base.GradNorm.settings
    postprocessor = "gradnorm_postprocessor:GradNormPostprocessor"

    def adapt(self, context: MethodContext) -> None:
        self.processor.num_classes = context.num_classes


class ReAct(_OpenOOD):
    key, title, fits, settings = "react", "ReAct", True, base.ReAct.settings
    postprocessor, args, wrapper = "react_postprocessor:ReactPostprocessor", {"percentile": 90}, "react_net:ReactNet"

    @property
    def threshold(self) -> float:
        return float(self.processor.threshold)


class ASH(_OpenOOD):
    key, title, settings = "ash", "ASH", base.ASH.settings
    postprocessor, args, wrapper = "ash_postprocessor:ASHPostprocessor", {"percentile": 90}, "ash_net:ASHNet"


class KNN(_OpenOOD):
    key, title, fits, settings = "knn", "KNN", True, base.KNN.settings
    postprocessor, args = "knn_postprocessor:KNNPostprocessor", {"K": base.KNN.K}

    def setup(self, context: MethodContext) -> None:
        base.KNN.check_size(context.require_training_features(self.title)[0])
        super().setup(context)


OPENOOD_METHODS: Dict[str, Type[Method]] = {cls.key: cls for cls in (MSP, MaxLogit, Energy, ODIN, GradNorm, ReAct, ASH, KNN)}
