"""The ``transform:`` step of the explorer's pipelines (pure; no Streamlit).

`install_layer_transform(layer, config, batches)` runs a `TransformConfig` (SmoothQuant,
Hadamard rotation, AWQ/GPTQ) on a freshly built `QuantLinear` with its calibration inputs, in
the layer's weight format, and installs it before calibration. The single-layer pipeline
(`explorer.core.pipeline.build_layer`) and the whole-model runs call it.

The calibration inputs are capped at `MAX_TRANSFORM_TOKENS` rows (evenly spaced over all
batches, deterministic), which bounds GPTQ's Hessian pass and AWQ's grid search; the
calibration of the observers afterwards still sees every batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from quantlib.quant_linear import QuantLinear
from quantlib.transforms import TransformConfig, TransformResult
from quantlib.transforms.control import Cancel

MAX_TRANSFORM_TOKENS = 2048

StepProgress = Callable[[float, str], None]


def calibration_tokens(batches: Sequence[torch.Tensor] | torch.Tensor,
                       cap: int = MAX_TRANSFORM_TOKENS) -> torch.Tensor:
    """The rows of ``batches`` (tensors [..., in]) as one [tokens, in] float32 tensor, at
    most ``cap`` rows, evenly spaced over all of them when there are more."""
    if isinstance(batches, torch.Tensor):
        batches = [batches]
    rows = torch.cat([b.detach().float().reshape(-1, b.shape[-1]) for b in batches])
    if rows.shape[0] <= cap:
        return rows
    index = torch.linspace(0, rows.shape[0] - 1, cap).round().long()
    return rows[index]


def install_layer_transform(layer: QuantLinear, config: TransformConfig,
                            batches: Sequence[torch.Tensor] | torch.Tensor,
                            progress: StepProgress | None = None,
                            cancel: Cancel | None = None,
                            cap: int = MAX_TRANSFORM_TOKENS) -> TransformResult:
    """Run ``config`` on ``layer`` (not yet calibrated) with its calibration ``batches``
    (capped at ``cap`` tokens) and install the result; returns it. ``progress(fraction, text)``
    follows the weight algorithm (GPTQ/AWQ); ``cancel`` as in `quantlib.transforms.control`."""
    name = _describe(config)
    report = progress or (lambda fraction, text: None)
    report(0.0, f"Transform: {name}")
    return layer.transform(calibration_tokens(batches, cap), config,
                           progress=lambda f: report(f, f"Transform: {name} ({f:.0%})"),
                           cancel=cancel)


def _describe(config: TransformConfig) -> str:
    parts = []
    if config.smoothquant is not None:
        parts.append(f"SmoothQuant a={config.smoothquant.alpha:g}")
    if config.rotation != "none":
        parts.append(f"{config.rotation} rotation")
    parts.append(config.weight_algorithm.upper())
    return " + ".join(parts)


def gather_linear_inputs(model: nn.Module, names: Sequence[str],
                         run: Callable[[nn.Module], object],
                         cap: int = MAX_TRANSFORM_TOKENS) -> dict[str, torch.Tensor]:
    """``{name: [<= cap, in]}``: the inputs that reach each named submodule of ``model`` while
    ``run(model)`` feeds it calibration data (forward pre-hooks, no grad). Rows are thinned
    as they arrive (to at most 2 x ``cap`` kept), then `calibration_tokens` picks ``cap``
    evenly spaced ones, so memory stays bounded for any amount of data."""
    kept: dict[str, list[torch.Tensor]] = {name: [] for name in names}

    def make_hook(name: str):
        def hook(module, args):
            rows = args[0].detach().float().reshape(-1, args[0].shape[-1])
            parts = kept[name]
            parts.append(rows.clone())
            if sum(p.shape[0] for p in parts) > 4 * cap:
                every = torch.cat(parts)
                kept[name] = [every[::2].clone()]
        return hook

    handles = [model.get_submodule(n).register_forward_pre_hook(make_hook(n)) for n in names]
    try:
        with torch.no_grad():
            run(model)
    finally:
        for handle in handles:
            handle.remove()
    return {name: calibration_tokens(parts, cap) for name, parts in kept.items()}


def install_model_transform(model: nn.Module, qlayers: dict[str, QuantLinear],
                            config: TransformConfig, run: Callable[[nn.Module], object],
                            progress: StepProgress | None = None,
                            cap: int = MAX_TRANSFORM_TOKENS) -> dict[str, TransformResult]:
    """Transform every uncalibrated QuantLinear in ``qlayers`` (named as in the fp32
    ``model``) with that layer's own calibration inputs: those reaching it in ``model``
    while ``run(model)`` runs. Returns the results by name."""
    inputs = gather_linear_inputs(model, list(qlayers), run, cap)
    report = progress or (lambda fraction, text: None)
    results = {}
    for i, (name, qlayer) in enumerate(qlayers.items()):
        report(i / len(qlayers), f"Transform ({_describe(config)}): {name} "
                                 f"({i + 1}/{len(qlayers)})")
        results[name] = qlayer.transform(inputs.pop(name), config)
    return results
