"""Which layers GAIA hooks: discovery from the model's structure, user overrides, listing.

Discovery runs the model once on one example (:func:`probe_model`) and records every
module that produced a (B, K, H, W) map. From that record and the module tree:

* GAIA-Z hooks the output of every normalization layer.
* GAIA-A's inner layers are the normalization layers of the backbone stages whose outputs
  have the two smallest spatial resolutions (layer3 and layer4 of a 4-stage ResNet,
  layer2 and layer3 of a 3-stage CIFAR ResNet). A *stage* is a child of the backbone
  module, the first module below the root with more than one child that holds
  normalization layers (so wrappers like ``DataParallel`` or ``ReactNet`` are looked
  through). Models without such structure fall back to each layer's own resolution.
* GAIA-A's output layer ``A_out`` is the last module output of spatial size larger than
  1 x 1: the feature map that global pooling turns into the penultimate feature.

:func:`select_layers` is the one place that defines what a layer spec means.
"""
from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from .hooks import forward_hooks
from .model_state import float32_forward, model_device, scoring_mode

__all__ = [
    "LayerInfo",
    "ModelProbe",
    "LayerSpec",
    "NORM_TYPES",
    "is_norm_layer",
    "probe_model",
    "check_layer_spec",
    "select_layers",
    "select_output_layer",
    "list_layers",
    "format_layer_table",
]

LayerSpec = Union[str, int, Sequence[str]]


def _norm_types() -> Tuple[type, ...]:
    types: List[type] = [nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm]
    if hasattr(nn, "RMSNorm"):
        types.append(nn.RMSNorm)
    try:  # detection models and some checkpoints use torchvision's frozen BatchNorm
        from torchvision.ops.misc import FrozenBatchNorm2d

        types.append(FrozenBatchNorm2d)
    except ImportError:  # pragma: no cover - torchvision is a dependency
        pass
    return tuple(types)


NORM_TYPES: Tuple[type, ...] = _norm_types()
"""Module types whose outputs count as normalization outputs (BatchNorm, SyncBatchNorm,
InstanceNorm, GroupNorm, LayerNorm, RMSNorm, torchvision's FrozenBatchNorm2d)."""


def is_norm_layer(module: nn.Module) -> bool:
    """True for the module types in :data:`NORM_TYPES`."""
    return isinstance(module, NORM_TYPES)


@dataclasses.dataclass(frozen=True)
class LayerInfo:
    """One module whose output is a (B, K, H, W) map, as seen in the probe forward pass.

    Attributes:
        name: the module's name in ``model.named_modules()``.
        kind: its class name.
        channels: K.
        height, width: spatial size of its output (last call).
        calls: how many times it ran in one forward pass.
        is_norm: whether it is a normalization layer.
        stage: the backbone stage holding it ('' when there is no stage structure).
        stage_area: H * W of the stage's output, the resolution GAIA-A ranks by.
        order: position of its last call among all module completions.
    """

    name: str
    kind: str
    channels: int
    height: int
    width: int
    calls: int
    is_norm: bool
    stage: str
    stage_area: int
    order: int

    @property
    def area(self) -> int:
        return self.height * self.width


@dataclasses.dataclass(frozen=True)
class ModelProbe:
    """What one forward pass of a model on one example showed.

    Attributes:
        input_shape: (C, H, W) of the example.
        layers: every module with a 4-D output, in the order their last call finished.
        module_names: every module name of the model (ran or not).
        ran: names of the modules that ran, in order of first completion.
        head: name of the ``nn.Linear`` whose output the model returned, if any.
        num_classes: C of the logits.
    """

    input_shape: Tuple[int, ...]
    layers: Tuple[LayerInfo, ...]
    module_names: Tuple[str, ...]
    ran: Tuple[str, ...]
    head: Optional[str]
    num_classes: int

    def layer(self, name: str) -> LayerInfo:
        for info in self.layers:
            if info.name == name:
                return info
        raise KeyError(name)

    @property
    def norm_layers(self) -> Tuple[LayerInfo, ...]:
        return tuple(info for info in self.layers if info.is_norm)


@dataclasses.dataclass
class _Seen:
    calls: int = 0
    first: int = -1
    last: int = -1
    shape: Optional[Tuple[int, ...]] = None


def probe_model(model: nn.Module, example: Tensor) -> ModelProbe:
    """Run ``model`` once on ``example[:1]`` and record every module's output shape.

    The model is run in eval mode under ``torch.no_grad()``; its state and hooks are
    restored afterwards.

    Args:
        model: the classifier, returning (B, C) logits.
        example: (B, C, H, W) input batch on the model's device; only the first sample runs.

    Returns:
        A :class:`ModelProbe`.
    """
    if example.dim() != 4:
        raise ValueError(f"expected a (B, C, H, W) example batch, got shape {tuple(example.shape)}")
    named = list(model.named_modules())
    seen: Dict[str, _Seen] = {name: _Seen() for name, _ in named}
    outputs: Dict[str, object] = {}
    counter = [0]

    def recorder(name: str):
        def hook(module: nn.Module, args: tuple, output: object) -> None:
            record = seen[name]
            record.calls += 1
            if record.first < 0:
                record.first = counter[0]
            record.last = counter[0]
            counter[0] += 1
            record.shape = tuple(output.shape) if isinstance(output, Tensor) else None
            outputs[name] = output

        return hook

    with scoring_mode(model, warn_if_training=False), torch.no_grad():
        with forward_hooks((module, recorder(name)) for name, module in named):
            try:
                logits = float32_forward(model, example[:1])
            except RuntimeError as error:
                raise ValueError(
                    f"The model's forward pass failed on an input of shape "
                    f"{tuple(example[:1].shape)}: {error}\nCheck that the images have the "
                    "channel count and size the model expects."
                ) from error
    if not isinstance(logits, Tensor) or logits.dim() != 2:
        kind = type(logits).__name__ if not isinstance(logits, Tensor) else f"shape {tuple(logits.shape)}"
        raise ValueError(
            f"GAIA needs a classifier whose forward returns a (B, num_classes) logits tensor; "
            f"this model returned {kind}. Wrap it so that model(x) returns the logits."
        )
    modules = dict(named)
    head = None
    for name, module in named:
        if name and isinstance(module, nn.Linear) and outputs.get(name) is logits:
            head = name
    stage_of = _stages(modules, seen)
    layers = []
    for name, record in seen.items():
        if record.calls == 0 or record.shape is None or len(record.shape) != 4 or name == "":
            continue
        stage = stage_of.get(name, "")
        stage_shape = seen[stage].shape if stage else None
        if stage_shape is None or len(stage_shape) != 4:
            stage_area = record.shape[2] * record.shape[3]
        else:
            stage_area = stage_shape[2] * stage_shape[3]
        layers.append(
            LayerInfo(
                name=name,
                kind=type(modules[name]).__name__,
                channels=record.shape[1],
                height=record.shape[2],
                width=record.shape[3],
                calls=record.calls,
                is_norm=is_norm_layer(modules[name]),
                stage=stage,
                stage_area=stage_area,
                order=record.last,
            )
        )
    layers.sort(key=lambda info: info.order)
    ran = sorted((name for name, r in seen.items() if r.calls and name), key=lambda n: seen[n].first)
    return ModelProbe(
        input_shape=tuple(example.shape[1:]),
        layers=tuple(layers),
        module_names=tuple(name for name, _ in named if name),
        ran=tuple(ran),
        head=head,
        num_classes=int(logits.shape[1]),
    )


def _stages(modules: Dict[str, nn.Module], seen: Dict[str, _Seen]) -> Dict[str, str]:
    """Map each normalization layer that ran with a 4-D output to its backbone stage."""
    norms = [
        name
        for name, module in modules.items()
        if name and is_norm_layer(module) and seen[name].shape is not None and len(seen[name].shape) == 4
    ]
    if not norms:
        return {}

    def children_holding_norms(prefix: str) -> List[str]:
        depth = 0 if prefix == "" else prefix.count(".") + 1
        found: List[str] = []
        for norm in norms:
            if prefix and not norm.startswith(prefix + "."):
                continue
            child = ".".join(norm.split(".")[: depth + 1])
            if child not in found:
                found.append(child)
        return found

    def expand_uncalled(names: List[str]) -> List[str]:
        # containers that are iterated rather than called (ModuleList) have no output of
        # their own; their children are the stages
        out: List[str] = []
        for name in names:
            if seen[name].calls == 0 and not is_norm_layer(modules[name]):
                out.extend(expand_uncalled(children_holding_norms(name)))
            else:
                out.append(name)
        return out

    level = ""
    candidates = children_holding_norms(level)
    while len(candidates) == 1 and not is_norm_layer(modules[candidates[0]]):
        level = candidates[0]
        candidates = children_holding_norms(level)
    stages = expand_uncalled(candidates)
    mapping: Dict[str, str] = {}
    for norm in norms:
        for stage in stages:
            if norm == stage or norm.startswith(stage + "."):
                mapping[norm] = stage
                break
    return mapping


def _close_matches(name: str, pool: Sequence[str]) -> str:
    matches = difflib.get_close_matches(name, list(pool), n=5, cutoff=0.5)
    return f" Close matches: {matches}." if matches else ""


def _preview(names: Sequence[str], limit: int = 12) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _check_named_layer(probe: ModelProbe, name: str) -> LayerInfo:
    if name not in probe.module_names:
        raise ValueError(
            f"The model has no module named '{name}'.{_close_matches(name, probe.module_names)} "
            "Names are those of model.named_modules(); run `gaia-openood layers` or "
            "gaia_openood.list_layers(model) to see them."
        )
    if name not in probe.ran:
        raise ValueError(
            f"Layer '{name}' exists but never ran in the forward pass, so it cannot be hooked. "
            f"Layers that ran: {_preview(probe.ran, 20)}."
        )
    try:
        return probe.layer(name)
    except KeyError:
        raise ValueError(
            f"Layer '{name}' does not output a (B, K, H, W) feature map, which GAIA needs. "
            f"Layers with such outputs: {_preview([i.name for i in probe.layers], 20)}."
        ) from None


def _smallest_resolutions(norms: Sequence[LayerInfo], count: int) -> Tuple[str, ...]:
    areas = sorted({info.stage_area for info in norms})[:count]
    return tuple(info.name for info in norms if info.stage_area in areas)


def check_layer_spec(spec: object, what: str = "layers") -> None:
    """Raise TypeError/ValueError when ``spec`` is not a valid layer spec (no model needed)."""
    if isinstance(spec, bool):
        raise TypeError(f"{what}: a layer spec cannot be a bool (got {spec}); use 'auto', 'all', an int or names")
    if isinstance(spec, int):
        if spec < 1:
            raise ValueError(f"{what}: the number of resolutions must be at least 1, got {spec}")
        return
    if isinstance(spec, str):
        if not spec:
            raise ValueError(f"{what}: empty layer name")
        return
    if not isinstance(spec, (list, tuple)) or not spec or not all(isinstance(s, str) and s for s in spec):
        raise TypeError(
            f"{what}: a layer spec must be 'auto', 'all', a positive int, a module name or a non-empty "
            f"list of names and glob patterns; got {spec!r}"
        )


def select_layers(probe: ModelProbe, spec: LayerSpec, *, default: str) -> Tuple[str, ...]:
    """Turn a layer spec into module names. The one definition of what a spec means.

    Args:
        probe: the model's :class:`ModelProbe`.
        spec: one of

            * ``"auto"``: the rule named by ``default``;
            * ``"all"``: every normalization layer;
            * an int ``n``: the normalization layers of the stages at the ``n`` smallest
              spatial resolutions (GAIA-A's rule is ``2``);
            * a module name or a list of names and glob patterns: a name selects that module
              whatever its type (it must output a (B, K, H, W) map); a pattern such as
              ``"layer4.*"`` selects the normalization layers whose names match.
        default: ``"all"`` (GAIA-Z) or ``"two_smallest"`` (GAIA-A inner layers).

    Returns:
        Module names in execution order, without duplicates.
    """
    check_layer_spec(spec)
    norms = probe.norm_layers
    if isinstance(spec, str) and spec == "auto":
        spec = "all" if default == "all" else 2
    if isinstance(spec, int):
        if not norms:
            raise ValueError(_no_norm_message(probe))
        return _smallest_resolutions(norms, spec)
    if isinstance(spec, str) and spec == "all":
        if not norms:
            raise ValueError(_no_norm_message(probe))
        return tuple(info.name for info in norms)
    if isinstance(spec, str):
        spec = [spec]
    chosen: List[str] = []
    for entry in spec:
        if any(char in entry for char in "*?["):
            matched = [info.name for info in norms if fnmatch.fnmatchcase(info.name, entry)]
            if not matched:
                raise ValueError(
                    f"The pattern '{entry}' matches no normalization layer. Normalization layers: "
                    f"{_preview([info.name for info in norms], 20) or 'none'}."
                )
        else:
            matched = [_check_named_layer(probe, entry).name]
        chosen.extend(name for name in matched if name not in chosen)
    order = {info.name: info.order for info in probe.layers}
    return tuple(sorted(chosen, key=order.__getitem__))


def _no_norm_message(probe: ModelProbe) -> str:
    return (
        "The model has no normalization layer with a (B, K, H, W) output, so GAIA's default "
        "layers do not exist. Name the layers to hook instead (e.g. layers=['features.3']); "
        f"layers with such outputs: {_preview([i.name for i in probe.layers], 20) or 'none'}."
    )


def select_output_layer(probe: ModelProbe, spec: str = "auto") -> str:
    """The module whose output is GAIA-A's final feature map ``A_out``.

    ``"auto"`` picks the last module output of spatial size larger than 1 x 1 (the map
    that global pooling reduces; containers and their last child share it, and the
    outermost is named). A module name selects that module.
    """
    if not isinstance(spec, str):
        raise TypeError(f"output_layer must be 'auto' or a module name, got {spec!r}")
    if spec != "auto":
        info = _check_named_layer(probe, spec)
        if info.calls != 1:
            raise ValueError(
                f"Output layer '{spec}' runs {info.calls} times in one forward pass; GAIA-A needs "
                "the single feature map that is pooled into the penultimate feature."
            )
        return spec
    if not probe.layers:
        raise ValueError(
            "The model produced no (B, K, H, W) feature map in its forward pass; GAIA works on "
            "convolutional classifiers."
        )
    spatial = [info for info in probe.layers if info.area > 1]
    return (spatial or list(probe.layers))[-1].name


def list_layers(
    model: nn.Module,
    input_shape: Sequence[int] = (3, 32, 32),
    *,
    example: Optional[Tensor] = None,
    z_layers: LayerSpec = "auto",
    inner_layers: LayerSpec = "auto",
    output_layer: str = "auto",
) -> List[Dict[str, object]]:
    """List the candidate layers of ``model`` and what each GAIA score would hook.

    Args:
        model: the classifier.
        input_shape: (C, H, W) of one input; a zero image of this shape is used when
            ``example`` is not given.
        example: an optional real (B, C, H, W) batch on the model's device.
        z_layers, inner_layers, output_layer: the same specs the detectors take.

    Returns:
        One dict per module with a (B, K, H, W) output that is a normalization layer or
        the output layer: name, kind, channels, height, width, calls, stage, gaia_z (bool),
        gaia_a ('inner', 'output' or '').

    Example:
        >>> from torchvision.models import resnet18
        >>> rows = list_layers(resnet18(), (3, 64, 64))
        >>> [r["name"] for r in rows if r["gaia_a"] == "output"]
        ['layer4']
    """
    if example is None:
        device = model_device(model) or torch.device("cpu")
        example = torch.zeros((1, *input_shape), device=device)
    probe = probe_model(model, example)
    z = set(select_layers(probe, z_layers, default="all"))
    inner = set(select_layers(probe, inner_layers, default="two_smallest"))
    out = select_output_layer(probe, output_layer)
    rows = []
    for info in probe.layers:
        if not (info.is_norm or info.name in z or info.name in inner or info.name == out):
            continue
        rows.append(
            {
                "name": info.name,
                "kind": info.kind,
                "channels": info.channels,
                "height": info.height,
                "width": info.width,
                "calls": info.calls,
                "stage": info.stage,
                "gaia_z": info.name in z,
                "gaia_a": "output" if info.name == out else ("inner" if info.name in inner else ""),
            }
        )
    return rows


def format_layer_table(rows: Sequence[Dict[str, object]]) -> str:
    """Render :func:`list_layers` rows as an aligned text table with channel totals."""
    header = ("layer", "type", "channels", "size", "stage", "GAIA-Z", "GAIA-A")
    body = [
        (
            str(r["name"]),
            str(r["kind"]),
            str(r["channels"]) + (f" x{r['calls']}" if int(r["calls"]) > 1 else ""),
            f"{r['height']}x{r['width']}",
            str(r["stage"]),
            "yes" if r["gaia_z"] else "",
            str(r["gaia_a"]),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *body]]
    z_channels = sum(int(r["channels"]) * int(r["calls"]) for r in rows if r["gaia_z"])
    a_channels = sum(int(r["channels"]) * int(r["calls"]) for r in rows if r["gaia_a"] == "inner")
    z_count = sum(1 for r in rows if r["gaia_z"])
    a_count = sum(1 for r in rows if r["gaia_a"] == "inner")
    lines.append("")
    lines.append(f"GAIA-Z: {z_count} layers, {z_channels} channels")
    lines.append(f"GAIA-A: {a_count} inner layers, {a_channels} channels; output layer: "
                 + ", ".join(str(r["name"]) for r in rows if r["gaia_a"] == "output"))
    return "\n".join(lines)
