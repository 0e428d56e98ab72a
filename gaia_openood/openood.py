"""The OpenOOD boundary: GAIA postprocessors, their registration, and where their configs live.

This is the only module that imports OpenOOD, and only when it is installed. Without
OpenOOD the postprocessors subclass a small stand-in with the same interface, so they
still run on any loader that yields OpenOOD-style batch dicts (``{'data': ..., 'label':
...}``).

    >>> import gaia_openood.openood as adapters
    >>> adapters.register()                                        # doctest: +SKIP
    >>> from openood.evaluation_api import Evaluator               # doctest: +SKIP
    >>> Evaluator(net, 'cifar10', config_root='OpenOOD/configs',   # doctest: +SKIP
    ...           postprocessor_name='gaia_a').eval_ood()
"""
from __future__ import annotations

import functools
import importlib.util
import os
import sys
import warnings
import weakref
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple, Type, Union

import torch
import yaml
from torch import nn

from .detector import GAIAA, GAIAZ, _GAIADetector

__all__ = [
    "GAIAZPostprocessor",
    "GAIAAPostprocessor",
    "POSTPROCESSORS",
    "register",
    "unregister",
    "config_root",
    "config_path",
    "openood_available",
    "check_config_file",
    "postprocessor_config",
    "OPENOOD_IMPORT_ERROR",
]


def _load_openood_base() -> Tuple[Optional[type], Optional[BaseException]]:
    if importlib.util.find_spec("openood") is None:
        return None, None
    try:
        from openood.postprocessors.base_postprocessor import BasePostprocessor
    except Exception as error:  # installed but broken (often a missing optional dependency)
        return None, error
    return BasePostprocessor, None


_OpenOODBase, OPENOOD_IMPORT_ERROR = _load_openood_base()
if OPENOOD_IMPORT_ERROR is not None:
    warnings.warn(
        f"openood is installed but could not be imported ({OPENOOD_IMPORT_ERROR!r}); the GAIA "
        "postprocessors fall back to a stand-in base class that OpenOOD's Evaluator will not "
        "accept. Install OpenOOD's dependencies (see its README) to use them inside OpenOOD.",
        ImportWarning,
        stacklevel=2,
    )


def openood_available() -> bool:
    """True when OpenOOD imported, so the postprocessors subclass its BasePostprocessor."""
    return _OpenOODBase is not None


class _StandaloneBase:
    """The part of OpenOOD's ``BasePostprocessor`` interface GAIA uses, for use without it."""

    def __init__(self, config: Any) -> None:
        self.config = config

    def setup(self, net: nn.Module, id_loader_dict: Any, ood_loader_dict: Any) -> None:
        pass


_Base: type = _OpenOODBase if _OpenOODBase is not None else _StandaloneBase


def config_root() -> str:
    """The folder holding this package's OpenOOD configs (``postprocessors/gaia_z.yml`` ...).

    Pass it as ``config_root`` to OpenOOD, or copy its YAMLs beside OpenOOD's own.
    """
    candidates = []
    spec = importlib.util.find_spec("gaia_openood.configs")
    if spec is not None and spec.submodule_search_locations:
        candidates.extend(spec.submodule_search_locations)
    here = os.path.dirname(os.path.abspath(__file__))
    candidates += [os.path.join(here, "configs"), os.path.join(os.path.dirname(here), "configs")]
    for folder in candidates:
        if os.path.isfile(os.path.join(folder, "postprocessors", "gaia_z.yml")):
            return os.path.abspath(folder)
    raise FileNotFoundError(f"gaia-openood's configs are missing from the installation (looked in {candidates})")


def config_path(name: str) -> str:
    """Path of the packaged YAML of postprocessor ``name`` ('gaia_z' or 'gaia_a')."""
    if name not in POSTPROCESSORS:
        raise ValueError(f"unknown GAIA postprocessor '{name}'; known: {sorted(POSTPROCESSORS)}")
    return os.path.join(config_root(), "postprocessors", f"{name}.yml")


def postprocessor_config(config_folder: str, name: str) -> str:
    """The YAML OpenOOD should read for postprocessor ``name`` given its ``config_root``.

    ``<config_folder>/postprocessors/<name>.yml``, except for GAIA's postprocessors when that
    file does not exist: then the packaged one. The rule :func:`register` installs.
    """
    own = os.path.join(str(config_folder), "postprocessors", f"{name}.yml")
    if name in POSTPROCESSORS and not os.path.isfile(own):
        return config_path(name)
    return own


def check_config_file(path: str) -> Dict[str, Any]:
    """Load a postprocessor YAML, raising ValueError that names the file when it is malformed."""
    try:
        with open(path) as handle:
            config = yaml.safe_load(handle)
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(config, dict) or not isinstance(config.get("postprocessor"), dict):
        raise ValueError(
            f"{path} has no 'postprocessor' section; OpenOOD postprocessor configs look like "
            f"{config_path('gaia_a')}."
        )
    return config


def _section(config: Any, key: str) -> Mapping:
    value = config.get(key) if isinstance(config, Mapping) else getattr(config, key, None)
    return value if isinstance(value, Mapping) else {}


class _GAIAPostprocessor(_Base):
    """OpenOOD postprocessor around a GAIA detector: ``postprocess`` gives (pred, conf).

    Args:
        config: OpenOOD's Config, a plain dict of the same shape, the path of a YAML file,
            or None for the packaged defaults. ``postprocessor.postprocessor_args`` are the
            detector's options; unknown keys, a hyperparameter sweep, or a config written for
            another postprocessor are rejected here, before any work.
    """

    name = ""
    detector_class: Type[Union[GAIAZ, GAIAA]] = GAIAZ
    defaults: Dict[str, Any] = {}

    def __init__(self, config: Any = None) -> None:
        if config is None:
            config = check_config_file(config_path(self.name))
        elif isinstance(config, (str, os.PathLike)):
            config = check_config_file(os.fspath(config))
        section = _section(config, "postprocessor")
        if not section:
            raise ValueError(
                f"{type(self).__name__}: the config has no 'postprocessor' section; use "
                f"{config_path(self.name)} as a template."
            )
        declared = section.get("name")
        if declared is not None and declared != self.name:
            raise ValueError(
                f"{type(self).__name__} was given a config for postprocessor '{declared}'; "
                f"its YAML must say name: {self.name} (template: {config_path(self.name)})."
            )
        super().__init__(config)
        args = section.get("postprocessor_args") or {}
        if not isinstance(args, Mapping):
            raise ValueError(f"{self.name}: postprocessor_args must be a mapping, got {args!r}")
        args = dict(args)
        unknown = sorted(set(args) - set(self.defaults))
        if unknown:
            raise ValueError(
                f"{self.name}: unknown postprocessor_args {unknown}; known: {sorted(self.defaults)}"
            )
        sweep = section.get("postprocessor_sweep") or {}
        if section.get("APS_mode") or sweep:
            raise ValueError(
                f"{self.name} has no hyperparameters to search: set APS_mode: False and leave "
                "postprocessor_sweep empty."
            )
        self.args = {**self.defaults, **args}
        self.args_dict: Dict[str, Any] = {}
        # what OpenOOD's factory sets; needed when an instance is passed to Evaluator directly
        self.APS_mode = False
        self.hyperparam_search_done = True
        self._detector: Optional[_GAIADetector] = None
        self._detector_net: Optional[weakref.ref] = None
        self.detector_class.check_options(**self.args)

    def set_hyperparam(self, hyperparam: list) -> None:
        if hyperparam:
            raise ValueError(f"{self.name} has no hyperparameters, got {hyperparam}")

    def get_hyperparam(self) -> list:
        return []

    def detector(self, net: nn.Module) -> _GAIADetector:
        """The detector for ``net``, built once per network."""
        if self._detector is None or self._detector_net is None or self._detector_net() is not net:
            self._detector = self.detector_class(net, **self.args)
            self._detector_net = weakref.ref(net)
        return self._detector

    def postprocess(self, net: nn.Module, data: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(pred, conf)`` of one batch; conf is the GAIA score, higher = more ID."""
        return self.detector(net).predict(data)

    def inference(self, net: nn.Module, data_loader: Iterable, progress: bool = True):
        """Score every batch of ``data_loader`` on the network's own device.

        Returns numpy arrays ``(pred, conf, label)`` like OpenOOD's ``BasePostprocessor``.
        """
        from tqdm.auto import tqdm

        dataset = getattr(getattr(data_loader, "dataset", None), "name", None)
        source = f"dataset '{dataset}'" if dataset else "the data loader"
        detector = self.detector(net)
        preds, confs, labels = [], [], []
        for index, batch in enumerate(tqdm(data_loader, disable=not progress, desc=self.name)):
            data, label = _unpack(batch, f"batch {index} of {source}")
            pred, conf = detector.predict(data, where=f"batch {index} of {source}")
            preds.append(pred.cpu())
            confs.append(conf.cpu())
            labels.append(torch.as_tensor(label).cpu() if label is not None else torch.full_like(pred.cpu(), -1))
        if not preds:
            raise ValueError(f"{source} yielded no batches; nothing to score.")
        return (
            torch.cat(preds).numpy().astype(int),
            torch.cat(confs).numpy(),
            torch.cat(labels).numpy().astype(int),
        )


def _unpack(batch: Any, where: str) -> Tuple[Any, Any]:
    if isinstance(batch, Mapping):
        if "data" not in batch:
            raise KeyError(f"{where}: the batch dict has no 'data' key (keys: {sorted(batch)}); "
                           "OpenOOD batches carry the images under 'data'.")
        return batch["data"], batch.get("label")
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise TypeError(f"{where}: expected a dict with 'data' (and 'label'), or an (images, labels) pair; "
                    f"got {type(batch).__name__}")


class GAIAZPostprocessor(_GAIAPostprocessor):
    """GAIA-Z for OpenOOD (``postprocessor_name='gaia_z'``); see :class:`gaia_openood.GAIAZ`."""

    name = "gaia_z"
    detector_class = GAIAZ
    defaults = {"layers": "auto", "micro_batch_size": "auto"}


class GAIAAPostprocessor(_GAIAPostprocessor):
    """GAIA-A for OpenOOD (``postprocessor_name='gaia_a'``); see :class:`gaia_openood.GAIAA`."""

    name = "gaia_a"
    detector_class = GAIAA
    defaults = {"inner_layers": "auto", "output_layer": "auto", "output_gradient": "auto", "micro_batch_size": "auto"}


POSTPROCESSORS: Dict[str, type] = {"gaia_z": GAIAZPostprocessor, "gaia_a": GAIAAPostprocessor}

_originals: Dict[Tuple[str, str], Any] = {}
_wrappers: Dict[Any, Any] = {}  # wrapper -> the OpenOOD function it wraps


def _require_openood() -> None:
    if _OpenOODBase is None:
        reason = f" (import failed: {OPENOOD_IMPORT_ERROR!r})" if OPENOOD_IMPORT_ERROR else ""
        raise ImportError(
            "register() needs OpenOOD, which is not importable" + reason + ". Install it from "
            "its repository (git clone https://github.com/Jingkang50/OpenOOD && pip install -e OpenOOD) "
            "with its dependencies, then import gaia_openood again."
        )


def _patch(module_name: str, attribute: str, replacement: Any) -> None:
    module = sys.modules[module_name]
    key = (module_name, attribute)
    if key not in _originals:
        _originals[key] = getattr(module, attribute)
    setattr(module, attribute, replacement)


def register() -> None:
    """Make OpenOOD build ``gaia_z`` and ``gaia_a`` by name; idempotent, undone by :func:`unregister`.

    * Evaluator API: adds both to ``openood.evaluation_api.postprocessor.postprocessors`` and
      lets ``get_postprocessor`` fall back to this package's YAML when ``config_root`` has no
      ``postprocessors/gaia_*.yml`` (so ``config_root`` can stay OpenOOD's own configs folder
      and OpenOOD never tries to download our configs).
    * Legacy ``main.py`` pipelines: wraps ``openood.postprocessors.get_postprocessor`` wherever
      it was imported, so a config whose ``postprocessor.name`` is ``gaia_z``/``gaia_a`` works.
    """
    _require_openood()
    import openood.evaluation_api.evaluator  # noqa: F401  (loads the modules patched below)
    import openood.evaluation_api.postprocessor as api
    import openood.postprocessors.utils as legacy

    api.postprocessors.update(POSTPROCESSORS)

    original_api = _originals.get(("openood.evaluation_api.postprocessor", "get_postprocessor"), api.get_postprocessor)

    @functools.wraps(original_api)
    def get_postprocessor(config_folder: str, postprocessor_name: str, id_data_name: str):
        if postprocessor_name not in api.postprocessors:
            raise ValueError(
                f"OpenOOD has no postprocessor named '{postprocessor_name}'. "
                f"Known: {sorted(api.postprocessors)}"
            )
        if postprocessor_name in POSTPROCESSORS:
            path = postprocessor_config(config_folder, postprocessor_name)
            check_config_file(path)
            config_folder = os.path.dirname(os.path.dirname(path))
        return original_api(config_folder, postprocessor_name, id_data_name)

    _wrappers[get_postprocessor] = original_api
    for name in ("openood.evaluation_api.postprocessor", "openood.evaluation_api.evaluator"):
        _patch(name, "get_postprocessor", get_postprocessor)

    original_legacy = _originals.get(("openood.postprocessors.utils", "get_postprocessor"), legacy.get_postprocessor)

    @functools.wraps(original_legacy)
    def get_legacy_postprocessor(config: Any):
        name = _section(config, "postprocessor").get("name")
        if name in POSTPROCESSORS:
            return POSTPROCESSORS[name](config)
        return original_legacy(config)

    _wrappers[get_legacy_postprocessor] = original_legacy
    for name, module in list(sys.modules.items()):
        if name.startswith("openood") and getattr(module, "get_postprocessor", None) is original_legacy:
            _patch(name, "get_postprocessor", get_legacy_postprocessor)


def unregister() -> None:
    """Undo :func:`register`: OpenOOD's registries and functions as they were.

    Modules that imported a wrapped function after :func:`register` get the original back too.
    """
    for (module_name, attribute), original in _originals.items():
        setattr(sys.modules[module_name], attribute, original)
    _originals.clear()
    for name, module in list(sys.modules.items()):
        current = getattr(module, "get_postprocessor", None) if name.startswith("openood") else None
        if current in _wrappers:
            module.get_postprocessor = _wrappers[current]
    _wrappers.clear()
    api = sys.modules.get("openood.evaluation_api.postprocessor")
    if api is not None:
        for name in POSTPROCESSORS:
            api.postprocessors.pop(name, None)
