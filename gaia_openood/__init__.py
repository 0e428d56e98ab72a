"""GAIA-Z and GAIA-A out-of-distribution detectors (Chen et al., NeurIPS 2023) for OpenOOD.

Higher scores mean more in-distribution throughout.

    >>> import torch, gaia_openood
    >>> from gaia_openood.models import build_model
    >>> net = build_model("resnet20").eval()
    >>> gaia_openood.GAIAA(net).score(torch.randn(2, 3, 32, 32)).shape
    torch.Size([2])

The OpenOOD adapters (``GAIAZPostprocessor``, ``GAIAAPostprocessor``, ``register``,
``config_root``) live in :mod:`gaia_openood.openood` and are imported on first use,
because importing OpenOOD takes seconds.
"""
from .detector import GAIAA, GAIAZ, GAIALayers
from .layers import format_layer_table, list_layers, probe_model, select_layers, select_output_layer
from .model_state import TrainingModeWarning

__version__ = "0.1.0"

_ADAPTERS = ("GAIAZPostprocessor", "GAIAAPostprocessor", "register", "unregister", "config_root", "config_path")

__all__ = [
    "GAIAZ",
    "GAIAA",
    "GAIALayers",
    "list_layers",
    "format_layer_table",
    "probe_model",
    "select_layers",
    "select_output_layer",
    "TrainingModeWarning",
    "__version__",
    *_ADAPTERS,
]


def __getattr__(name: str):
    if name in _ADAPTERS:
        from . import openood as adapters

        return getattr(adapters, name)
    raise AttributeError(f"module 'gaia_openood' has no attribute '{name}'")
