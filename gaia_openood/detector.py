"""GAIA-Z and GAIA-A as plain objects: a model and a batch in, one score per sample out.

Higher scores mean more in-distribution (OpenOOD's ``conf`` convention) everywhere in
this package; the raw abnormalities of the paper are the negated scores.

Example:
    >>> import torch
    >>> from torchvision.models import resnet18
    >>> model = resnet18(num_classes=10).eval()
    >>> x = torch.randn(4, 3, 64, 64)
    >>> GAIAZ(model).score(x).shape, GAIAA(model).score(x).shape
    (torch.Size([4]), torch.Size([4]))
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from .capture import GradientTaps, OutputKeeper
from .hooks import forward_hooks
from .layers import LayerSpec, ModelProbe, check_layer_spec, probe_model, select_layers, select_output_layer
from .model_state import autocast_disabled, check_batch_independent, float32_forward, model_device, scoring_mode
from .scores import (
    gaia_a_abnormality,
    gaia_z_abnormality,
    nonzero_fraction,
    output_gradient_closed_form,
    spatial_mean,
)

__all__ = ["GAIAZ", "GAIAA", "ApproxGAIAZ", "GAIALayers", "validate_images", "OUTPUT_GRADIENTS"]

OUTPUT_GRADIENTS = ("auto", "closed_form", "autograd")
MicroBatch = Union[int, str, None]
AUTO_CHUNK_BYTES = 8 * 2**20  # 'auto' micro-batches on CPU: largest hooked map per chunk


@dataclasses.dataclass(frozen=True)
class GAIALayers:
    """The layers a detector hooks for one input shape.

    Attributes:
        hooked: GAIA-Z's layers, or GAIA-A's inner layers, in execution order.
        output: GAIA-A's final feature map ``A_out`` ('' for GAIA-Z).
        head: the linear head whose output is the logits, if one was found.
        probe: the probe record the choice was made from.
    """

    hooked: Tuple[str, ...]
    output: str
    head: Optional[str]
    probe: ModelProbe


def validate_images(x: object, where: str = "input") -> Tensor:
    """Check that ``x`` is a non-empty, finite, floating (B, C, H, W) batch and return it.

    ``where`` names the input in error messages (e.g. "batch 3 of dataset 'tin'").
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{where}: expected a torch.Tensor of images, got {type(x).__name__}")
    if x.dim() != 4:
        hint = " Add the batch dimension with x.unsqueeze(0)." if x.dim() == 3 else ""
        raise ValueError(f"{where}: expected images of shape (B, C, H, W), got {tuple(x.shape)}.{hint}")
    if x.shape[0] == 0:
        raise ValueError(f"{where}: the batch is empty (shape {tuple(x.shape)}).")
    if not x.is_floating_point():
        raise TypeError(
            f"{where}: images have integer dtype {x.dtype}. Convert and normalise them the way "
            "the model was trained (e.g. x.float() / 255 followed by the mean/std normalisation)."
        )
    finite = torch.isfinite(x).flatten(1).all(dim=1)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).flatten().tolist()
        raise ValueError(
            f"{where}: sample(s) {bad[:10]}{' ...' if len(bad) > 10 else ''} contain NaN or "
            "infinite pixel values; their scores would be meaningless. Fix or drop them."
        )
    return x


class _GAIADetector:
    """Shared machinery: input checks, device, micro-batches, layer choice per input shape."""

    def __init__(self, model: nn.Module, *, micro_batch_size: MicroBatch = "auto") -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if isinstance(model, torch.jit.ScriptModule):
            raise TypeError(
                "TorchScript models cannot be scored: forward hooks do not run inside them. "
                "Pass the original (eager) nn.Module."
            )
        # torch.compile wraps the module; hooks and autograd need the eager original
        model = getattr(model, "_orig_mod", model)
        check_batch_independent(model)
        self.model = model
        self.micro_batch_size = micro_batch_size
        self._layers: Dict[Tuple[int, ...], GAIALayers] = {}

    @staticmethod
    def _check_micro_batch_size(micro_batch_size: MicroBatch) -> None:
        if micro_batch_size is None or micro_batch_size == "auto":
            return
        if isinstance(micro_batch_size, bool) or not isinstance(micro_batch_size, int) or micro_batch_size < 1:
            raise ValueError(f"micro_batch_size must be 'auto', None or a positive int, got {micro_batch_size!r}")

    def chunk_size(self, x: Tensor, layers: GAIALayers) -> int:
        """How many samples of ``x`` are scored at once (``micro_batch_size`` resolved)."""
        if self.micro_batch_size is None:
            return x.shape[0]
        if self.micro_batch_size != "auto":
            return self.micro_batch_size
        if x.device.type != "cpu":
            return x.shape[0]
        # On CPU, big autograd graphs pay for fresh memory pages on every call; chunks whose
        # largest hooked map stays small reuse the allocator's memory and the caches.
        largest = max(layers.probe.layer(name).channels * layers.probe.layer(name).area for name in layers.hooked)
        return max(1, min(x.shape[0], AUTO_CHUNK_BYTES // (4 * largest)))

    def _choose_layers(self, probe: ModelProbe) -> GAIALayers:
        raise NotImplementedError

    def _score_chunk(self, x: Tensor, layers: GAIALayers) -> Tuple[Tensor, Tensor]:
        raise NotImplementedError

    def layers(self, x: Tensor) -> GAIALayers:
        """The layers hooked for inputs shaped like ``x`` (chosen once per input shape)."""
        key = tuple(x.shape[1:])
        if key not in self._layers:
            self._layers[key] = self._choose_layers(probe_model(self.model, x[:1]))
        return self._layers[key]

    def _prepare(self, x: object, where: str) -> Tensor:
        x = validate_images(x, where)
        device = model_device(self.model)
        if device is not None and x.device != device:
            x = x.to(device)
        if x.dtype != torch.float32:
            x = x.float()
        if x.requires_grad:
            x = x.detach()
        if x.is_inference():
            with torch.inference_mode(False):
                x = x.clone()
        return x

    def predict(self, x: Tensor, *, where: str = "input") -> Tuple[Tensor, Tensor]:
        """Predicted classes and scores of a batch.

        Args:
            x: (B, C, H, W) float images, preprocessed as the model expects.
            where: how to name this batch in error messages.

        Returns:
            ``(pred, score)``: (B,) int64 predicted classes (argmax of the logits) and (B,)
            float32 scores, higher = more in-distribution, on the model's device.
        """
        x = self._prepare(x, where)
        with torch.inference_mode(False), autocast_disabled(x.device):
            try:
                layers = self.layers(x)
            except ValueError as error:
                raise ValueError(f"{where}: {error}") from error
            step = self.chunk_size(x, layers)
            preds, scores = [], []
            for start in range(0, x.shape[0], step):
                logits, score = self._score_chunk(x[start : start + step], layers)
                for values, what in ((logits, "logits"), (score, "GAIA scores")):
                    finite = torch.isfinite(values.reshape(values.shape[0], -1)).all(dim=1)
                    if not bool(finite.all()):
                        bad = (torch.nonzero(~finite).flatten() + start).tolist()
                        raise ValueError(
                            f"{where}: sample(s) {bad[:10]} got non-finite {what}; GAIA cannot "
                            "score them. Non-finite logits point at the inputs' scale or the "
                            "weights; non-finite GAIA-A scores mean the output gradient vanished "
                            "(e.g. a uniform softmax)."
                        )
                preds.append(logits.argmax(dim=1))
                scores.append(score)
        return torch.cat(preds), torch.cat(scores)

    def score(self, x: Tensor) -> Tensor:
        """(B,) float32 scores of a (B, C, H, W) batch; higher = more in-distribution."""
        return self.predict(x)[1]

    __call__ = score

    def _module(self, name: str) -> nn.Module:
        return self.model.get_submodule(name)


class GAIAZ(_GAIADetector):
    """GAIA-Z, zero-deflation abnormality: score = -mean over channels of rho**2.

    ``rho`` is the fraction of non-zero entries of the gradient of the top logit with
    respect to each channel of each hooked layer (every normalization output by default).
    One forward and one backward pass per batch; the backward stops at the first hooked
    layer and computes no parameter gradient.

    Args:
        model: a classifier returning (B, C) logits; its state is restored after each call.
        layers: the layer spec (see :func:`gaia_openood.layers.select_layers`); ``"auto"``
            hooks every normalization layer.
        micro_batch_size: how many samples to score at once; scores never depend on it.
            ``"auto"`` (default): on CPU, chunks whose largest hooked feature map holds at
            most 8 MiB (faster: memory is reused instead of freshly paged in on every
            call); on other devices the whole batch. ``None``: the whole batch. An int:
            chunks of that size, to bound peak memory.

    Example:
        >>> import torch
        >>> from gaia_openood.models import build_model
        >>> net = build_model("resnet20").eval()
        >>> GAIAZ(net).score(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2])
    """

    def __init__(self, model: nn.Module, *, layers: LayerSpec = "auto", micro_batch_size: MicroBatch = "auto"):
        self.check_options(layers=layers, micro_batch_size=micro_batch_size)
        super().__init__(model, micro_batch_size=micro_batch_size)
        self.layer_spec = layers

    @classmethod
    def check_options(cls, *, layers: LayerSpec = "auto", micro_batch_size: MicroBatch = "auto") -> None:
        """Validate the options without a model (raises ValueError / TypeError)."""
        check_layer_spec(layers, "layers")
        cls._check_micro_batch_size(micro_batch_size)

    def _choose_layers(self, probe: ModelProbe) -> GAIALayers:
        return GAIALayers(select_layers(probe, self.layer_spec, default="all"), "", probe.head, probe)

    def _score_chunk(self, x: Tensor, layers: GAIALayers) -> Tuple[Tensor, Tensor]:
        taps = GradientTaps({name: self._module(name) for name in layers.hooked}, nonzero_fraction)
        with scoring_mode(self.model), torch.enable_grad():
            with forward_hooks(taps.hooks()):
                logits = float32_forward(self.model, x)
            taps.check_fired(layers.probe.ran)
            taps.backward(logits.max(dim=1).values.sum())
        raw = gaia_z_abnormality(taps.collect(x.shape[0], x.device))
        return logits.detach(), -raw


class ApproxGAIAZ(GAIAZ):
    """An APPROXIMATION of GAIA-Z from one forward pass: ``rho`` is the fraction of positive entries.

    GAIA-Z's zeros come mostly from the ReLU that follows each normalization layer: the
    gradient with respect to a normalization output is zero where that ReLU is off. This
    estimate replaces the exact non-zero fraction of the gradient by the fraction of the
    normalization output's entries that are positive, which is exact only where the ReLU is
    applied directly to the normalization output and nothing downstream zeroes the gradient.
    It misses the residual additions between a BatchNorm and its ReLU in post-activation
    ResNets. It costs one forward pass with no autograd graph. ``scripts/bench_speed.py``
    reports how far its scores and AUROC are from the exact GAIA-Z.

    Args: as :class:`GAIAZ`.
    """

    def _score_chunk(self, x: Tensor, layers: GAIALayers) -> Tuple[Tensor, Tensor]:
        fractions: List[Tensor] = []
        fired: Dict[str, int] = {name: 0 for name in layers.hooked}

        def hook_for(name: str):
            def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
                fired[name] += 1
                fractions.append(nonzero_fraction(output.clamp(min=0)))

            return hook

        with scoring_mode(self.model), torch.no_grad():
            with forward_hooks((self._module(name), hook_for(name)) for name in layers.hooked):
                logits = float32_forward(self.model, x)
        missing = [name for name, count in fired.items() if count == 0]
        if missing:
            raise RuntimeError(f"Hooked layer(s) {missing} did not run in this forward pass.")
        return logits, -gaia_z_abnormality(fractions)


class GAIAA(_GAIADetector):
    """GAIA-A, channel-wise average abnormality: score = -mean over inner channels of (|w| / O)**2.

    ``w`` is the spatial mean of the gradient of ``sum(z)`` (the penultimate feature,
    ``z = mean_hw(A_out)``) with respect to each inner channel; ``O = sqrt(mean |g|)`` with
    ``g`` the spatial mean of the gradient of ``sum(log_softmax(y))`` with respect to
    ``A_out``. When the head is global average pooling plus one linear layer (checked on
    every batch) ``g`` comes in closed form; otherwise from one extra backward pass
    through the head.

    Args:
        model: a classifier returning (B, C) logits; its state is restored after each call.
        inner_layers: layer spec of the inner layers; ``"auto"`` takes the normalization
            layers of the stages at the two smallest spatial resolutions.
        output_layer: module whose output is ``A_out``; ``"auto"`` takes the last feature
            map larger than 1 x 1.
        output_gradient: ``"auto"`` (closed form when valid, else autograd),
            ``"closed_form"`` (error when it does not apply) or ``"autograd"``.
        micro_batch_size: how many samples to score at once; scores never depend on it.
            ``"auto"`` (default): on CPU, chunks whose largest hooked feature map holds at
            most 8 MiB (faster: memory is reused instead of freshly paged in on every
            call); on other devices the whole batch. ``None``: the whole batch. An int:
            chunks of that size, to bound peak memory.

    Example:
        >>> import torch
        >>> from gaia_openood.models import build_model
        >>> net = build_model("resnet20").eval()
        >>> GAIAA(net).layers(torch.zeros(1, 3, 32, 32)).output
        'layer3'
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        inner_layers: LayerSpec = "auto",
        output_layer: str = "auto",
        output_gradient: str = "auto",
        micro_batch_size: MicroBatch = "auto",
    ):
        self.check_options(
            inner_layers=inner_layers,
            output_layer=output_layer,
            output_gradient=output_gradient,
            micro_batch_size=micro_batch_size,
        )
        super().__init__(model, micro_batch_size=micro_batch_size)
        self.inner_spec = inner_layers
        self.output_spec = output_layer
        self.output_gradient = output_gradient

    @classmethod
    def check_options(
        cls,
        *,
        inner_layers: LayerSpec = "auto",
        output_layer: str = "auto",
        output_gradient: str = "auto",
        micro_batch_size: MicroBatch = "auto",
    ) -> None:
        """Validate the options without a model (raises ValueError / TypeError)."""
        check_layer_spec(inner_layers, "inner_layers")
        if not isinstance(output_layer, str) or not output_layer:
            raise TypeError(f"output_layer must be 'auto' or a module name, got {output_layer!r}")
        if output_gradient not in OUTPUT_GRADIENTS:
            raise ValueError(f"output_gradient must be one of {OUTPUT_GRADIENTS}, got {output_gradient!r}")
        cls._check_micro_batch_size(micro_batch_size)

    def _choose_layers(self, probe: ModelProbe) -> GAIALayers:
        output = select_output_layer(probe, self.output_spec)
        inner = select_layers(probe, self.inner_spec, default="two_smallest")
        output_order = probe.layer(output).order
        late = [name for name in inner if probe.layer(name).order > output_order]
        if late:
            raise ValueError(
                f"Inner layer(s) {late} run after the output layer '{output}', so no gradient "
                "from the pooled feature reaches them. Choose inner layers before the output "
                "layer, or a later output layer."
            )
        return GAIALayers(inner, output, probe.head, probe)

    def _score_chunk(self, x: Tensor, layers: GAIALayers) -> Tuple[Tensor, Tensor]:
        taps = GradientTaps({name: self._module(name) for name in layers.hooked}, spatial_mean)
        keep = OutputKeeper(layers.output, self._module(layers.output))
        head = OutputKeeper(layers.head, self._module(layers.head)) if layers.head else None
        hooks = taps.hooks() + [(keep.module, keep.hook)] + ([(head.module, head.hook)] if head else [])
        with scoring_mode(self.model), torch.enable_grad():
            with forward_hooks(hooks):
                logits = float32_forward(self.model, x)
            taps.check_fired(layers.probe.ran)
            feature_map = self._feature_map(keep)
            area = feature_map.shape[2] * feature_map.shape[3]
            g = self._closed_form(logits, feature_map, head)
            if g is None:
                (grad,) = torch.autograd.grad(
                    torch.log_softmax(logits, dim=1).sum(), feature_map, retain_graph=True
                )
                g = spatial_mean(grad)
            taps.backward(feature_map, torch.full_like(feature_map, 1.0 / area))
        raw = gaia_a_abnormality(taps.collect(x.shape[0], x.device), g)
        return logits.detach(), -raw

    @staticmethod
    def _feature_map(keep: OutputKeeper) -> Tensor:
        if keep.calls != 1 or not isinstance(keep.output, Tensor) or keep.output.dim() != 4:
            raise RuntimeError(
                f"Output layer '{keep.name}' ran {keep.calls} time(s) in this forward pass; "
                "GAIA-A needs exactly one (B, K, H, W) feature map from it."
            )
        if not keep.output.requires_grad:
            raise RuntimeError(
                f"Output layer '{keep.name}' does not depend on any inner layer through "
                "autograd; choose inner layers that feed it."
            )
        return keep.output

    def _closed_form(self, logits: Tensor, feature_map: Tensor, head: Optional[OutputKeeper]) -> Optional[Tensor]:
        """``g`` without a backward pass when the head is verifiably GAP + one linear layer."""
        if self.output_gradient == "autograd":
            return None
        valid = head is not None and head.calls == 1 and head.output is logits
        if valid:
            z = head.input
            pooled = feature_map.detach().float().mean(dim=(2, 3))
            valid = (
                isinstance(z, Tensor)
                and z.shape == pooled.shape
                and torch.allclose(z.detach().float(), pooled, rtol=1e-4, atol=1e-5 * (1.0 + float(pooled.abs().max())))
            )
        if valid:
            area = feature_map.shape[2] * feature_map.shape[3]
            return output_gradient_closed_form(logits.detach(), head.module.weight.detach(), area)
        if self.output_gradient == "closed_form":
            raise ValueError(
                "output_gradient='closed_form' needs a head that is global average pooling of the "
                "output layer followed by one nn.Linear whose output the model returns; this model's "
                "head is different. Use output_gradient='auto'."
            )
        return None
