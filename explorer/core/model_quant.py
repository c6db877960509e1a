"""Whole-model post-training quantization with `quantlib.quant_linear.QuantLinear`.

`quantize_model` copies a model, swaps its ``nn.Linear`` layers (all, or the ones named) for
``QuantLinear``, calibrates them, and compares fp32 with quantized top-1 accuracy. Steps:

1. **Calibrate on fp32 activations.** Every ``QuantLinear`` stays in fp32 mode and its
   ``forward`` is temporarily its ``calibration``, so the copy computes exactly the fp32 model
   while each layer's output (and input) observer sees the real fp32 activations that reach it.
   A layer's qparams therefore never depend on which other layers are quantized.
2. ``compute_output_quant_params()`` on every layer, then all switch to ``"quantized"``.
3. **Evaluate** the fp32 model and the quantized copy on the same eval batches.

What the per-layer numbers (`LayerQuantRow`) measure, all over the eval data:

- ``weight_qsnr`` / ``weight_clip_fraction``: the dequantized weight [out, in] against the fp32
  weight (independent of data).
- ``output_qsnr`` / ``output_clip_fraction``: the layer's own (**local**) error, the profiler of
  ``QuantLinear``: its fake-quantized output against ``F.linear(x, W_fp32, b)`` on the *same*
  incoming ``x``. Inside a quantized model that ``x`` already carries the error of the layers
  before, so this isolates what this layer adds. With only this layer quantized it equals a
  direct ``QuantLinear`` build on the layer's captured fp32 inputs.
- ``cumulative_output_qsnr``: the layer's quantized output inside the quantized model against
  the same layer's output inside the fp32 model (same eval rows): the **accumulated** error of
  this layer and everything upstream.
- ``input_qsnr`` / ``input_clip_fraction`` (only with an ``activation`` config): the
  fake-quantized input against the incoming input.

QSNR is ``10 log10(sum x^2 / sum (x - x_hat)^2)`` in dB (+inf when lossless).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from explorer.core.transform_step import install_model_transform
from quantlib.profiler import qsnr_db
from quantlib.quant_config import QuantConfig
from quantlib.quant_linear import QuantLinear

__all__ = [
    "LayerQuantRow",
    "ModelQuantResult",
    "calibrating",
    "capture_linear_inputs",
    "layer_sensitivity",
    "linear_layer_names",
    "quantize_model",
    "swap_quant_linears",
    "top1_accuracy",
]

BATCH_SIZE = 256
Progress = Callable[[float, str], None]


@dataclass
class LayerQuantRow:
    """One quantized Linear's numbers (see the module docstring for what each measures).
    QSNRs are in dB, clip fractions in [0, 1]; ``input_*`` are None without an activation
    config."""

    name: str
    out_features: int
    in_features: int
    weight_qsnr: float
    output_qsnr: float
    cumulative_output_qsnr: float
    weight_clip_fraction: float
    output_clip_fraction: float
    input_qsnr: float | None = None
    input_clip_fraction: float | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """The weight's shape ``(out_features, in_features)``."""
        return (self.out_features, self.in_features)

    def as_dict(self) -> dict:
        """A flat dict for a table row (``shape`` as ``"out x in"``)."""
        row = dataclasses.asdict(self)
        row["shape"] = f"{self.out_features} x {self.in_features}"
        return row


@dataclass
class ModelQuantResult:
    """The outcome of `quantize_model`.

    ``layers``: one `LayerQuantRow` per quantized Linear, in model order. Accuracies are top-1
    in [0, 1] on the eval data. ``model``: the quantized copy (its ``QuantLinear`` layers are in
    ``"quantized"`` mode; their profilers hold the eval statistics).
    """

    layers: list[LayerQuantRow]
    fp32_accuracy: float
    quantized_accuracy: float
    model: nn.Module
    num_calibration_rows: int
    num_eval_rows: int

    @property
    def accuracy_drop(self) -> float:
        """fp32 minus quantized accuracy (positive when quantization hurts)."""
        return self.fp32_accuracy - self.quantized_accuracy

    def table(self) -> list[dict]:
        """The per-layer rows as dicts (for a dataframe)."""
        return [row.as_dict() for row in self.layers]

    def quant_layer(self, name: str) -> QuantLinear:
        """The ``QuantLinear`` that replaced Linear ``name``."""
        module = self.model.get_submodule(name)
        assert isinstance(module, QuantLinear)
        return module


# --- generic model helpers -----------------------------------------------------------------


def linear_layer_names(model: nn.Module) -> list[str]:
    """Dotted names of every ``nn.Linear`` in ``model``, in registration order."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]


@torch.no_grad()
def top1_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  batch_size: int = 1024) -> float:
    """Fraction of rows of ``x`` [rows, ...] whose argmax logit equals ``y`` [rows]."""
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"x has {x.shape[0]} rows and y has {y.shape[0]}; they must match "
                         "and be non-empty")
    correct = 0
    for start in range(0, x.shape[0], batch_size):
        logits = model(x[start:start + batch_size])
        correct += int((logits.argmax(dim=-1) == y[start:start + batch_size]).sum())
    return correct / x.shape[0]


@torch.no_grad()
def capture_linear_inputs(model: nn.Module, x: torch.Tensor, names: Sequence[str],
                          batch_size: int = 1024) -> dict[str, torch.Tensor]:
    """Run ``model`` on ``x`` and return each named module's input as [rows, in_features]
    (inputs [..., in] are flattened to rows), captured with forward pre-hooks."""
    modules = _named_linears(model, names)
    captured: dict[str, list[torch.Tensor]] = {name: [] for name in modules}

    def make_hook(name: str):
        def hook(module, args):
            inp = args[0]
            captured[name].append(inp.detach().reshape(-1, inp.shape[-1]).clone())
        return hook

    handles = [m.register_forward_pre_hook(make_hook(n)) for n, m in modules.items()]
    try:
        for start in range(0, x.shape[0], batch_size):
            model(x[start:start + batch_size])
    finally:
        for handle in handles:
            handle.remove()
    return {name: torch.cat(parts) for name, parts in captured.items()}


# --- quantization --------------------------------------------------------------------------


def quantize_model(model: nn.Module, configs: dict[str, QuantConfig | None],
                   calib_x: torch.Tensor, eval_x: torch.Tensor, eval_y: torch.Tensor,
                   layers: Sequence[str] | None = None, progress: Progress | None = None,
                   batch_size: int = BATCH_SIZE) -> ModelQuantResult:
    """Quantize a copy of ``model`` and compare it with the fp32 model (``model`` is untouched).

    - ``configs``: ``{'weight', 'output', 'activation' (optional)}`` QuantConfigs, as from
      ``load_config_from_yaml``; profiling is switched on in copies (the table needs it).
      A ``'transform'`` (TransformConfig) is applied to every quantized Linear with its own
      calibration inputs (`explorer.core.transform_step.install_model_transform`).
    - ``calib_x`` [rows, ...]: model inputs for calibration, fed in ``batch_size`` batches.
    - ``eval_x`` [rows, ...] / ``eval_y`` [rows]: labelled model inputs for accuracy and QSNR.
    - ``layers``: names of the Linears to quantize (default: all, see `linear_layer_names`).
    - ``progress(fraction, text)``: called after every calibration and eval batch.
    """
    linears = _named_linears(model, layers)
    _check_data(calib_x, eval_x, eval_y, batch_size)
    qmodel, qlayers = swap_quant_linears(model, configs, layers)
    calib_batches = _batches(calib_x, batch_size)
    if configs.get("transform") is not None:  # each Linear with its own fp32 inputs
        with _eval_mode(model):
            install_model_transform(model, qlayers, configs["transform"],
                                    lambda m: [m(batch) for batch in calib_batches])
    eval_starts = range(0, eval_x.shape[0], batch_size)
    steps = len(calib_batches) + len(eval_starts)

    with torch.no_grad(), calibrating(qlayers.values()):
        for i, batch in enumerate(calib_batches):
            qmodel(batch)
            _report(progress, (i + 1) / steps, f"calibrating: batch {i + 1}/{len(calib_batches)}")
    for qlayer in qlayers.values():
        qlayer.compute_output_quant_params()
        qlayer.mode = "quantized"

    fp32_correct = quant_correct = 0
    sums = {name: [0.0, 0.0] for name in qlayers}  # [signal, noise] of the cumulative QSNR
    with torch.no_grad(), _eval_mode(model):
        for j, start in enumerate(eval_starts):
            xb, yb = eval_x[start:start + batch_size], eval_y[start:start + batch_size]
            fp32_logits, fp32_outs = _run_capturing_outputs(model, xb, linears)
            quant_logits, quant_outs = _run_capturing_outputs(qmodel, xb, qlayers)
            fp32_correct += int((fp32_logits.argmax(-1) == yb).sum())
            quant_correct += int((quant_logits.argmax(-1) == yb).sum())
            for name, acc in sums.items():
                ref = fp32_outs[name].double()
                acc[0] += float((ref * ref).sum())
                acc[1] += float(((quant_outs[name].double() - ref) ** 2).sum())
            _report(progress, (len(calib_batches) + j + 1) / steps,
                    f"evaluating: batch {j + 1}/{len(eval_starts)}")

    rows = [_layer_row(name, q, qsnr_db(*sums[name])) for name, q in qlayers.items()]
    n_eval = eval_x.shape[0]
    return ModelQuantResult(layers=rows, fp32_accuracy=fp32_correct / n_eval,
                            quantized_accuracy=quant_correct / n_eval, model=qmodel,
                            num_calibration_rows=calib_x.shape[0], num_eval_rows=n_eval)


def layer_sensitivity(model: nn.Module, configs: dict[str, QuantConfig | None],
                      calib_x: torch.Tensor, eval_x: torch.Tensor, eval_y: torch.Tensor,
                      layers: Sequence[str] | None = None, progress: Progress | None = None,
                      batch_size: int = BATCH_SIZE,
                      full: ModelQuantResult | None = None) -> dict[str, float]:
    """``{name: top-1 accuracy in [0, 1] with only that Linear quantized}`` for every Linear
    (or those in ``layers``); the rest stay fp32. Same arguments as `quantize_model`.

    A layer calibrates on the fp32 model's activations either way, so its qparams do not
    depend on which other layers are quantized: given ``full`` (a `quantize_model` result with
    those layers), its calibrated layers are reused instead of calibrating again.
    """
    names = list(_named_linears(model, layers))  # validate the names before any work
    result: dict[str, float] = {}
    for i, name in enumerate(names):
        if full is not None:
            one_layer = copy.deepcopy(model)
            _set_submodule(one_layer, name, copy.deepcopy(full.quant_layer(name)))
            result[name] = top1_accuracy(one_layer, eval_x, eval_y, batch_size)
        else:
            result[name] = quantize_model(model, configs, calib_x, eval_x, eval_y,
                                          layers=[name], batch_size=batch_size
                                          ).quantized_accuracy
        _report(progress, (i + 1) / len(names), f"sensitivity: {name} ({i + 1}/{len(names)})")
    return result


def swap_quant_linears(model: nn.Module, configs: dict[str, QuantConfig | None],
                       layers: Sequence[str] | None = None
                       ) -> tuple[nn.Module, dict[str, QuantLinear]]:
    """``(copy, {name: QuantLinear})``: an eval-mode deep copy of ``model`` (untouched) whose
    named ``nn.Linear`` layers (all when None) are `QuantLinear` s with ``configs`` (profiling
    on), still in fp32 mode and uncalibrated. Calibrate them inside `calibrating`."""
    out_cfg, weight_cfg, act_cfg = _profiled_configs(configs)
    linears = _named_linears(model, layers)
    qmodel = copy.deepcopy(model).eval()
    qlayers: dict[str, QuantLinear] = {}
    for name, linear in linears.items():
        qlayer = QuantLinear(linear, out_cfg, weight_cfg, layer_name=name, act_config=act_cfg)
        _set_submodule(qmodel, name, qlayer)
        qlayers[name] = qlayer
    return qmodel, qlayers


# --- helpers -------------------------------------------------------------------------------


def _profiled_configs(configs) -> tuple[QuantConfig, QuantConfig, QuantConfig | None]:
    if not isinstance(configs, dict) or not {"output", "weight"} <= configs.keys():
        got = sorted(configs) if isinstance(configs, dict) else type(configs).__name__
        raise ValueError("configs must be a dict with QuantConfigs under 'output' and 'weight' "
                         f"(and optionally 'activation'), as load_config_from_yaml returns; "
                         f"got {got}")
    picked = []
    for key in ("output", "weight", "activation"):
        cfg = configs.get(key)
        if cfg is None and key != "activation":
            raise ValueError(f"configs[{key!r}] is None; it must be a QuantConfig")
        if cfg is not None and not isinstance(cfg, QuantConfig):
            raise TypeError(f"configs[{key!r}] must be a QuantConfig, got {type(cfg).__name__}")
        picked.append(None if cfg is None else dataclasses.replace(cfg, enable_profiler=True))
    return picked[0], picked[1], picked[2]


def _named_linears(model: nn.Module, names: Sequence[str] | None) -> dict[str, nn.Linear]:
    """``{name: nn.Linear}`` for ``names`` (all Linears when None), validated."""
    if isinstance(names, str):
        raise TypeError(f"layer names must be a list of names, not the string {names!r}")
    valid = linear_layer_names(model)
    names = list(valid if names is None else names)
    modules = dict(model.named_modules())
    out: dict[str, nn.Linear] = {}
    for name in names:
        if not isinstance(modules.get(name), nn.Linear):
            raise ValueError(f"{name!r} is not an nn.Linear of the model; choose from "
                             f"{', '.join(valid) or '(none)'}")
        problem = _replacement_problem(name, modules[name], modules)
        if problem is not None:
            raise ValueError(problem)
        out[name] = modules[name]
    if not out:
        raise ValueError(f"no layers to quantize; choose from {', '.join(valid) or '(none)'}")
    if len(out) != len(names):
        raise ValueError(f"layer names repeat: {list(names)}")
    return out


def _replacement_problem(name: str, module: nn.Linear, modules: dict) -> str | None:
    """Why replacing ``module`` by a `QuantLinear` would not quantize what the model computes,
    or None. QuantLinear computes ``x @ W.T + b``: a subclass's own ``forward`` (LoRA, a
    scaled or masked Linear) would be dropped silently, and ``nn.MultiheadAttention`` reads
    its ``out_proj`` weight directly, never calling the module."""
    kind = type(module)
    if kind.forward is not nn.Linear.forward:
        return (f"{name!r} is a {kind.__module__}.{kind.__qualname__}, an nn.Linear subclass "
                f"with its own forward(); QuantLinear computes a plain Linear and would drop "
                f"that forward silently, so it is refused. Choose plain nn.Linear layers "
                f"(layers=[...]) or quantize that module's Linears yourself")
    parent = modules.get(name.rpartition(".")[0]) if "." in name else None
    if isinstance(parent, nn.MultiheadAttention):
        return (f"{name!r} belongs to an nn.MultiheadAttention, which uses its weight "
                f"directly and never calls it; replacing it would quantize nothing. Choose "
                f"other layers (layers=[...])")
    return None


def _check_data(calib_x, eval_x, eval_y, batch_size: int) -> None:
    for what, t in (("calib_x", calib_x), ("eval_x", eval_x), ("eval_y", eval_y)):
        if not isinstance(t, torch.Tensor) or t.dim() == 0 or t.shape[0] == 0:
            raise ValueError(f"{what} must be a non-empty tensor with rows on dim 0, got "
                             f"{tuple(t.shape) if isinstance(t, torch.Tensor) else t!r}")
    if eval_y.dim() != 1 or eval_y.shape[0] != eval_x.shape[0] or eval_y.is_floating_point():
        raise ValueError(f"eval_y must be integer labels [rows] matching eval_x's "
                         f"{eval_x.shape[0]} rows; got {eval_y.dtype} {tuple(eval_y.shape)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def _batches(x: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    return [x[i:i + batch_size] for i in range(0, x.shape[0], batch_size)]


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, child, module)


@contextmanager
def calibrating(qlayers):
    """Within the block, each QuantLinear's forward is its fp32 ``calibration`` (observe,
    return fp32), so the model computes exactly fp32 while every observer sees the fp32
    activations that reach it."""
    qlayers = list(qlayers)
    for q in qlayers:
        q.forward = q.calibration
    try:
        yield
    finally:
        for q in qlayers:
            del q.forward


@contextmanager
def _eval_mode(model: nn.Module):
    """Put ``model`` in eval mode for the block, then restore its train/eval flags."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in flags:
            m.training = training


def _run_capturing_outputs(model: nn.Module, x: torch.Tensor, modules: dict[str, nn.Module]):
    """``(model(x), {name: that module's output})``."""
    outs: dict[str, torch.Tensor] = {}
    handles = [m.register_forward_hook(lambda _m, _a, out, n=n: outs.__setitem__(n, out))
               for n, m in modules.items()]
    try:
        logits = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return logits, outs


def _layer_row(name: str, q: QuantLinear, cumulative_qsnr: float) -> LayerQuantRow:
    res = q.get_profiling_results()
    w, o = res["weight"]["statistics"], res["output"]["statistics"]
    a = res["activation"]["statistics"] if q.act_config is not None else None
    return LayerQuantRow(
        name=name, out_features=q.out_features, in_features=q.in_features,
        weight_qsnr=w["qsnr"], output_qsnr=o["qsnr"], cumulative_output_qsnr=cumulative_qsnr,
        weight_clip_fraction=w["clip_fraction"], output_clip_fraction=o["clip_fraction"],
        input_qsnr=None if a is None else a["qsnr"],
        input_clip_fraction=None if a is None else a["clip_fraction"])


def _report(progress: Progress | None, fraction: float, text: str) -> None:
    if progress is not None:
        progress(min(max(fraction, 0.0), 1.0), text)

