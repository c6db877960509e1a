"""Pure logic of the compare view: several named configs of one layer on the same data.

No Streamlit here. The view's steps, each a function:

- `parse_entry(name, text)`: one config's YAML document -> configs, or the loader's error;
- `classic_set(document)`: MinMax / Percentile / OMSE / KL copies of a document (observer changed
  for weight AND outputs, every other line kept);
- `config_diff(named)`: only the fields that differ, as dotted paths (``weight.bit_type.bits``);
- `calibrate_config(configs, data)`: build + calibrate one `QuantLinear`
  (`pipeline.build_layer`), evaluate and time it -> the layer and a small `ConfigRun`;
  `with_sweep` / `sweep_layer` add its bit-width sweep (`run_config` does both);
- `calibration_outputs(data)`: the fp32 outputs the output observers saw, for the
  clip-threshold view (`explorer.compare.clip`).

The bit-width sweep never recalibrates: the observers re-derive qparams from the data they
hold. Range observers (MinMax, EMA, Percentile) choose a range that does not depend on the bit
width, so it is computed once and only the qparams change; OMSE and KL search a bit-dependent
clip, so they re-run their search on their stored data (`BaseObserver.with_bit_type`).
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from explorer.core.pipeline import SampleData, build_layer
from explorer.core.yaml_edit import join_document, set_field, split_document
from quantlib.analysis import sweep_bit_widths
from quantlib.config_loader import ConfigError, dump_config_to_yaml, load_config_from_string
from quantlib.observers.base import BaseObserver
from quantlib.profiler import qsnr_db
from quantlib.quant_config import QuantConfig
from quantlib.quant_linear import QuantLinear

MIN_CONFIGS, MAX_CONFIGS = 2, 4
CLASSIC = (("MinMax", "MinmaxObserver"), ("Percentile", "PercentileObserver"),
           ("OMSE", "OmseObserver"), ("KL", "KLObserver"))
SWEEP_BITS = (2, 3, 4, 5, 6, 7, 8)
WIDE_BITS = 16
TENSORS = ("weight", "output")
SECTION_OF = {"weight": "weight", "output": "outputs", "activation": "activation"}

ProgressCallback = Callable[[float, str], None]
Configs = Mapping[str, QuantConfig | None]


# --- configs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedEntry:
    """One compare slot: its name, YAML text and either the loader's configs or its error."""

    name: str
    text: str
    configs: dict | None
    error: ConfigError | None
    warnings: tuple[str, ...] = ()


def parse_entry(name: str, text: str) -> ParsedEntry:
    """Parse a whole config document (``weight:``, ``outputs:``, optional ``activation:``)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            configs = load_config_from_string(text)
        except ConfigError as err:
            return ParsedEntry(name, text, None, err)
    return ParsedEntry(name, text, configs, None, tuple(str(w.message) for w in caught))


def classic_set(document: str) -> list[tuple[str, str]]:
    """``[(name, text)]`` for MinMax, Percentile, OMSE and KL: ``document`` with the
    ``observer_type`` of weight and outputs replaced (bits, granularity, method and comments
    kept). Raises `ConfigError` when ``document`` is not a valid config."""
    configs = load_config_from_string(document)
    return [(name, _swap_observers(document, configs, {"weight": observer, "output": observer}))
            for name, observer in CLASSIC]


OTHER_OBSERVER = {"MinmaxObserver": "PercentileObserver"}  # anything else -> MinMax


def other_observer(observer: str) -> str:
    """The observer B starts with when A uses ``observer``: Percentile for MinMax, MinMax for
    every other one (both are quick to calibrate)."""
    return OTHER_OBSERVER.get(observer, "MinmaxObserver")


def ab_pair(document: str) -> tuple[list[tuple[str, str]], str]:
    """The first comparison: ``[("A", document), ("B", variant)]`` and a sentence saying how B
    differs. B is ``document`` with the weight and output observers each swapped for
    `other_observer` (every other line kept), so no curve of B hides A's. An invalid
    ``document`` gives two copies (its error shows in both editors)."""
    try:
        configs = load_config_from_string(document)
    except ConfigError:
        return [("A", document), ("B", document)], "B starts as a copy of A."
    swapped = {key: other_observer(configs[key].observer_type) for key in ("weight", "output")}
    text = _swap_observers(document, configs, swapped)
    note = (f"B starts as A with other observers (weight: {swapped['weight']}, outputs: "
            f"{swapped['output']}), so the two differ; edit either.")
    return [("A", document), ("B", text)], note


def _swap_observers(document: str, configs: Configs, observers: Mapping[str, str]) -> str:
    """``document`` with the weight's and the outputs' ``observer_type`` set to
    ``observers["weight"]`` / ``observers["output"]``, every other line kept; an unusual layout
    (flow style, anchors) is rebuilt from the parsed values."""
    bodies = split_document(document)
    edited = dict(bodies)
    for section, key in (("weight", "weight"), ("outputs", "output")):
        body = bodies.get(section)
        edited[section] = None if body is None else set_field(body, ("observer_type",),
                                                              observers[key])
    wanted = {key: (cfg if cfg is None or key not in observers
                    else dataclasses.replace(cfg, observer_type=observers[key]))
              for key, cfg in configs.items()}
    text = (join_document(edited) if all(edited.get(s) for s in ("weight", "outputs"))
            else None)
    if text is None or parse_entry("", text).configs != wanted:
        text = dump_config_to_yaml(wanted)
    return text


def flatten_configs(configs: Configs) -> dict[str, object]:
    """Dotted path -> value for every field, e.g. ``weight.bit_type.bits`` -> 8 (sections by
    their YAML header; an absent activation section is ``activation`` -> None)."""
    flat: dict[str, object] = {}
    for key in ("weight", "output", "activation"):
        section = SECTION_OF[key]
        config = configs.get(key)
        if config is None:
            flat[section] = None
            continue
        for field, value in config.to_dict().items():
            if isinstance(value, dict):
                for sub, sub_value in value.items():
                    flat[f"{section}.{field}.{sub}"] = sub_value
            else:
                flat[f"{section}.{field}"] = value
    return flat


def config_diff(named: Mapping[str, Configs]) -> list[tuple[str, tuple]]:
    """The fields whose values differ between the configs: ``[(path, (value per config))]`` in
    field order; empty when every config is the same. A field missing from a config (its
    section is absent) shows as None."""
    flats = [flatten_configs(configs) for configs in named.values()]
    paths = list(dict.fromkeys(p for flat in flats for p in flat))
    rows = []
    for path in paths:
        values = tuple(flat.get(path) for flat in flats)
        if any(v != values[0] or type(v) is not type(values[0]) for v in values[1:]):
            rows.append((path, values))
    # An absent section and its fields say the same thing twice: keep the section's fields.
    return [(p, v) for p, v in rows
            if not (p in SECTION_OF.values() and any(q.startswith(p + ".") for q, _ in rows))]


# --- running one config -----------------------------------------------------------------------


@dataclass(frozen=True)
class TensorRun:
    """One quantized tensor of one config, evaluated on the held-out batch.

    ``per_channel_qsnr`` is [C] (out channels for weight and output). ``scale``/``zero_point``,
    ``clip_lo``/``clip_hi`` (the representable range, ``Quantizer.clip_range``) and
    ``range_lo``/``range_hi`` (the observer's range, see `observer_range`) are [1]
    (layer_wise) or [C] (channel_wise).
    """

    config: QuantConfig
    qsnr: float
    mse: float
    clip_fraction: float
    per_channel_qsnr: torch.Tensor
    scale: torch.Tensor
    zero_point: torch.Tensor
    clip_lo: torch.Tensor
    clip_hi: torch.Tensor
    range_lo: torch.Tensor
    range_hi: torch.Tensor
    bits_per_element: float = math.nan  # element bits + scale bits, per element

    @property
    def threshold(self) -> torch.Tensor:
        """The clip threshold t of each range ([1] or [C]): max(-min(lo, 0), max(hi, 0)), the
        t whose symmetric range [-t, t] gives the same scale."""
        return torch.maximum(-self.range_lo.clamp(max=0.0), self.range_hi.clamp(min=0.0))


@dataclass(frozen=True)
class Sweep:
    """QSNR (dB) at each bit width, weight and output both at ``bits[i]`` (signedness kept,
    input activation at its configured width), on the held-out batch; ``weight_bpe`` /
    ``output_bpe`` are the bits per element there, scales included. A float format has a
    fixed width: its sweep is the one point of its own config."""

    bits: tuple[int, ...]
    weight_qsnr: tuple[float, ...]
    output_qsnr: tuple[float, ...]
    weight_bpe: tuple[float, ...] = ()
    output_bpe: tuple[float, ...] = ()


@dataclass(frozen=True)
class ConfigRun:
    """Everything the compare view shows for one config; all small (no layer, no data).
    ``sweep`` is None until the bit widths are swept (`run_config` with ``bits``)."""

    configs: dict
    tensors: dict[str, TensorRun]
    observer_ms: float      # weight observer + output observer's qparams search
    calibration_ms: float   # forward passes over the calibration batches (+ observer updates)
    sweep: Sweep | None = None
    sweep_ms: float = 0.0


def profiled(configs: Configs) -> dict:
    """``configs`` with the profiler on, so every metric exists (the metrics do not change);
    entries that are not a `QuantConfig` (a ``transform`` section) are kept as they are."""
    return {key: dataclasses.replace(cfg, enable_profiler=True)
            if isinstance(cfg, QuantConfig) else cfg for key, cfg in configs.items()}


def run_config(configs: Configs, data: SampleData, bits: Sequence[int] = SWEEP_BITS,
               progress: ProgressCallback | None = None) -> ConfigRun:
    """`calibrate_config`, then sweep ``bits`` (none when empty) on the calibrated layer."""
    layer, run = calibrate_config(configs, data, progress)
    return with_sweep(run, layer, data.eval_batch, bits) if bits else run


def with_sweep(run: ConfigRun, layer, eval_x: torch.Tensor, bits: Sequence[int],
               progress: ProgressCallback | None = None) -> ConfigRun:
    """``run`` with the bit-width sweep of its calibrated ``layer`` (and its time)."""
    start = time.perf_counter()
    sweep = sweep_layer(layer, eval_x, bits, progress)
    return dataclasses.replace(run, sweep=sweep, sweep_ms=(time.perf_counter() - start) * 1e3)


def calibrate_config(configs: Configs, data: SampleData,
                     progress: ProgressCallback | None = None) -> tuple[QuantLinear, ConfigRun]:
    """Build and calibrate ``configs`` on ``data`` (`build_layer`) and evaluate one quantized
    forward on the held-out batch -> (the calibrated layer, its `ConfigRun` without a sweep).
    """
    layer = build_layer(profiled(configs), data, progress)
    with torch.no_grad():
        layer(data.eval_batch)
    results = layer.get_profiling_results()
    quantizers = {"weight": layer.weight_quantizer, "output": layer.output_quantizer}
    observers = {"weight": layer.weight_observer, "output": layer.output_observer}
    tensors = {}
    for name in TENSORS:
        stats = results[name]["statistics"]
        quantizer = quantizers[name]
        range_lo, range_hi = observer_range(observers[name], quantizer)
        tensors[name] = TensorRun(
            config=configs[name], qsnr=stats["qsnr"], mse=stats["mse"],
            clip_fraction=stats["clip_fraction"],
            per_channel_qsnr=stats["per_channel_qsnr"].clone(),
            scale=quantizer.scale.clone(), zero_point=quantizer.zero_point.clone(),
            clip_lo=quantizer.clip_range()[0].clone(), clip_hi=quantizer.clip_range()[1].clone(),
            range_lo=range_lo.clone(), range_hi=range_hi.clone(),
            bits_per_element=float(results[name].get("memory", {}).get("bits_per_element",
                                                                         math.nan)))
    times = {name: results[name]["time"] for name in TENSORS}
    return layer, ConfigRun(
        configs=dict(configs), tensors=tensors,
        observer_ms=times["weight"].get("observe_ms", 0.0) + times["output"].get("qparams_ms", 0.0),
        calibration_ms=times["output"].get("calibration_ms", 0.0))


def observer_range(observer: BaseObserver, quantizer) -> tuple[torch.Tensor, torch.Tensor]:
    """The (lo, hi) range ([1] or [C]) the observer chose. Range observers recompute it
    (cheap). OMSE and KL would repeat their whole search, so their range is read back from the
    qparams: exactly the symmetric [-t, t] with t = scale * (qmax - qmin) / 2 for Uniform
    (the same t, hence the same scale), the representable range for Affine (within a step)."""
    config = observer.config
    if not observer.range_depends_on_bits:
        return observer.compute_range()
    if config.is_symmetric:
        bt = config.bit_type
        t = quantizer.scale.double() * ((bt.qmax - bt.qmin) / 2)
        return -t, t
    return tuple(v.double() for v in quantizer.clip_range())


def sweep_layer(layer: QuantLinear, eval_x: torch.Tensor, bits: Sequence[int] = SWEEP_BITS,
                progress: ProgressCallback | None = None) -> Sweep:
    """Weight and output QSNR of a calibrated `QuantLinear` at each width in ``bits``
    (`quantlib.analysis.sweep_bit_widths`: no recalibration; equals building the layer at b
    bits and running ``eval_x`` through it)."""
    memory = {name: layer.get_profiling_results().get(name, {}).get("memory", {})
              for name in TENSORS}
    own = {"weight": layer.weight_config, "output": layer.out_config}
    bpe = {name: float(memory[name].get("bits_per_element", math.nan)) for name in TENSORS}
    if any(config.bit_type.is_float for config in own.values()):
        # A float format has one element width: its own config is the sweep's one point.
        qsnr = own_qsnr(layer, eval_x)
        return Sweep((own["weight"].bit_type.bits,), (qsnr["weight"],), (qsnr["output"],),
                     (bpe["weight"],), (bpe["output"],))
    sweep = sweep_bit_widths(layer, eval_x, bits, progress)
    # The scale overhead (scale bits per element) does not depend on the element width.
    over = {name: bpe[name] - own[name].bit_type.bits for name in TENSORS}
    return Sweep(tuple(sweep["bits"]), tuple(sweep["weight_qsnr"]), tuple(sweep["output_qsnr"]),
                 tuple(b + over["weight"] for b in sweep["bits"]),
                 tuple(b + over["output"] for b in sweep["bits"]))


def own_qsnr(layer: QuantLinear, eval_x: torch.Tensor) -> dict[str, float]:
    """Weight and output QSNR (dB) of a calibrated layer at its own configs on ``eval_x``."""
    with torch.no_grad():
        x = eval_x.float()
        reference = F.linear(x, layer.weight, layer.bias)
        x_q = x if layer.input_quantizer is None else layer.input_quantizer(x)
        y = layer.output_quantizer(F.linear(x_q, layer.dequant_weight, layer.bias))
    return {"weight": qsnr_db(float(layer.weight.double().pow(2).sum()),
                              float((layer.dequant_weight - layer.weight).double().pow(2).sum())),
            "output": qsnr_db(float(reference.double().pow(2).sum()),
                              float((y - reference).double().pow(2).sum()))}


def ideal_qsnr(bits: int) -> float:
    """The ideal uniform quantizer's QSNR: a signal spread evenly over the full grid range,
    20·log10(2^b − 1) dB, which grows 6.02 dB per bit."""
    return 20.0 * math.log10(2**bits - 1)


def db_lost(run: ConfigRun) -> dict[str, float]:
    """dB below the ideal line at the config's own bit width, per tensor (its measured QSNR);
    NaN for a float format (the ideal line describes a uniform integer grid)."""
    return {name: math.nan if t.config.bit_type.is_float
            else ideal_qsnr(t.config.bit_type.bits) - t.qsnr for name, t in run.tensors.items()}


def calibration_outputs(data: SampleData) -> torch.Tensor:
    """The fp32 outputs [N, out] the output observers saw: every calibration batch through the
    fp32 layer, stacked."""
    with torch.no_grad():
        return torch.cat([F.linear(batch.float(), data.weight, data.bias)
                          for batch in data.calibration]).reshape(-1, data.weight.shape[0])
