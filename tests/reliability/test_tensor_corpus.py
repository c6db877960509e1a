"""Awkward tensors through every observer and through `QuantLinear`, for both calibration
modes and both methods: each gives finite qparams and finite outputs, or a clear error of
the exact type whose message names the layer and the tensor."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import pytest
import torch
from torch import nn

from quantlib.bit_type import BitType
from quantlib.observers import OBSERVER_REGISTRY, build_observer
from quantlib.observers.kl import abs_histogram
from quantlib.observers.stored import StoredDataObserver
from quantlib.profiler import QuantProfiler
from quantlib.quant_config import (
    CALIBRATION_MODES,
    OBSERVER_TYPES,
    QUANTIZATION_METHODS,
    QuantConfig,
)
from quantlib.quant_linear import QuantLinear
from quantlib.quantizers import Quantizer

FLOAT32_MAX = torch.finfo(torch.float32).max
DENORMAL = 1e-42  # below float32's smallest normal (1.2e-38)
IN_FEATURES, OUT_FEATURES = 8, 4

SETUPS = [(obs, mode, method) for obs in OBSERVER_TYPES for mode in CALIBRATION_MODES
          for method in QUANTIZATION_METHODS]
SETUP_IDS = [f"{obs.removesuffix('Observer')}-{mode}-{method}" for obs, mode, method in SETUPS]


def make_config(observer: str, mode: str, method: str, bits: int = 8) -> QuantConfig:
    # kl_bins=256 keeps KL fast on these small tensors; every other field is the default
    return QuantConfig(calibration_mode=mode, observer_type=observer,
                       quantization_method=method, bit_type=BitType(bits, True), kl_bins=256)


def randn(*shape, seed=0, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


def with_value(t: torch.Tensor, value: float, index=(0, 0)) -> torch.Tensor:
    t = t.clone()
    t[index] = value
    return t


# --- observers on their own ------------------------------------------------------------


@dataclass
class ObserverCase:
    tensor: torch.Tensor
    axis: int = 0
    error: type[Exception] | None = None
    fragment: str = ""


def _plus_minus_max(rows: int, cols: int) -> torch.Tensor:
    """Alternating +-float32 max: no clipping observer can shrink this range."""
    t = torch.full((rows, cols), FLOAT32_MAX)
    t[:, ::2] = -FLOAT32_MAX
    return t


def _strided() -> torch.Tensor:
    t = randn(8, 32, seed=3)[::2, ::3]
    assert not t.is_contiguous()
    return t


OBSERVER_CASES = {
    "all-zeros": ObserverCase(torch.zeros(4, 16)),
    "constant-channels": ObserverCase(torch.arange(4.0).unsqueeze(1).expand(4, 16) - 1.5),
    "single-element": ObserverCase(torch.tensor([[0.7]])),
    "0-d": ObserverCase(torch.tensor(-2.5)),
    "1-d": ObserverCase(randn(16)),
    "3-d-last-axis": ObserverCase(randn(2, 3, 5), axis=-1),
    "4-d-last-axis": ObserverCase(randn(2, 3, 4, 5), axis=-1),
    "4-d-axis0": ObserverCase(randn(3, 2, 4, 5)),
    "zero-size-batch": ObserverCase(torch.zeros(0, 16), axis=-1, error=RuntimeError,
                                    fragment="probe.t: {obs} has seen no data"),
    "zero-channels": ObserverCase(torch.zeros(0, 16), axis=0, error=RuntimeError,
                                  fragment="probe.t: {obs} has seen no data"),
    "nan": ObserverCase(with_value(randn(4, 16), math.nan), error=ValueError,
                        fragment="probe.t: the tensor contains NaN or Inf"),
    "+inf": ObserverCase(with_value(randn(4, 16), math.inf), error=ValueError,
                         fragment="probe.t: the tensor contains NaN or Inf"),
    "-inf": ObserverCase(with_value(randn(4, 16), -math.inf), error=ValueError,
                         fragment="probe.t: the tensor contains NaN or Inf"),
    "1e38": ObserverCase(with_value(with_value(randn(4, 16), 1e38), -1e38, (1, 3))),
    "float32-max": ObserverCase(_plus_minus_max(4, 16), error=ValueError,
                                fragment="probe.t: the observed range [-3.403e+38, 3.403e+38] "
                                         "is too wide to quantize in float32"),
    "denormals": ObserverCase(randn(4, 16) * DENORMAL),
    "denormal-and-zero-channels": ObserverCase(
        torch.cat([torch.zeros(1, 16), randn(2, 16) * DENORMAL, randn(1, 16)])),
    "float16": ObserverCase(randn(4, 16, dtype=torch.float16)),
    "bfloat16": ObserverCase(randn(4, 16, dtype=torch.bfloat16)),
    "float64": ObserverCase(randn(4, 16, dtype=torch.float64)),
    "transposed": ObserverCase(randn(16, 4, seed=2).t()),
    "strided": ObserverCase(_strided()),
    "expanded-stride-0": ObserverCase(randn(4, 1).expand(4, 16)),
}


@pytest.mark.parametrize("case_name", sorted(OBSERVER_CASES))
@pytest.mark.parametrize("observer,mode,method", SETUPS, ids=SETUP_IDS)
def test_observer_on_awkward_tensor(observer, mode, method, case_name):
    case = OBSERVER_CASES[case_name]
    obs = build_observer(make_config(observer, mode, method), channel_axis=case.axis,
                         name="probe.t")
    if case.error is not None:
        with pytest.raises(case.error) as info:
            obs.update(case.tensor)
            obs.get_quantization_params()
        assert type(info.value) is case.error
        assert case.fragment.format(obs=observer) in str(info.value)
        return
    obs.update(case.tensor)
    scale, zero = obs.get_quantization_params()
    channels = case.tensor.shape[case.axis] if mode == "channel_wise" and case.tensor.dim() else 1
    assert scale.shape == zero.shape == (channels,)
    assert bool(torch.isfinite(scale).all() and (scale > 0).all()), scale
    bt = obs.bit_type
    assert bool(((zero >= bt.qmin) & (zero <= bt.qmax)).all())
    quantizer = Quantizer(bt, channel_axis=case.axis)
    quantizer.update_quantization_params(scale, zero)
    codes = quantizer.quant(case.tensor)
    assert codes.shape == case.tensor.shape and codes.dtype == torch.int32
    assert bool(((codes >= bt.qmin) & (codes <= bt.qmax)).all())
    dequant = quantizer.dequantize(codes)
    assert bool(torch.isfinite(dequant).all())
    assert torch.equal(dequant, quantizer(case.tensor))


def assert_reused_buffer_changes_nothing(config: QuantConfig, buffer: torch.Tensor) -> None:
    """Observe ``buffer``, then overwrite it as a caller reusing it for the next batch would:
    the qparams equal those of an observer that saw a private copy."""
    reference = build_observer(config, channel_axis=0)
    reference.update(buffer.clone())
    obs = build_observer(config, channel_axis=0)
    obs.update(buffer)
    buffer.mul_(1000.0)  # the next "batch" lands in the same memory
    for got, want in zip(obs.get_quantization_params(), reference.get_quantization_params()):
        assert torch.equal(got, want)


@pytest.mark.parametrize("observer", OBSERVER_TYPES)
@pytest.mark.parametrize("mode", CALIBRATION_MODES)
def test_stored_values_do_not_alias_the_callers_batch(observer, mode):
    """A caller reusing one buffer for every batch must not rewrite what was observed."""
    assert_reused_buffer_changes_nothing(make_config(observer, mode, "Affine"),
                                         randn(4, 64, seed=4))


STORED_OBSERVERS = [name for name in OBSERVER_TYPES
                    if issubclass(OBSERVER_REGISTRY[name], StoredDataObserver)]


@pytest.mark.parametrize("observer", STORED_OBSERVERS)
def test_a_large_reused_batch_is_not_aliased_either(observer):
    """4M values, per tensor: KL counts them on several threads (from 2M values)."""
    assert_reused_buffer_changes_nothing(make_config(observer, "layer_wise", "Affine"),
                                         randn(4, 2**20, seed=5))


# --- QuantLinear -----------------------------------------------------------------------


@dataclass
class LayerCase:
    """weight [out, in]; calibration batches; the quantized forward's input.

    ``error``/``fragment``/``stage`` describe the expected failure: the stage is "build",
    "calibrate" or "forward"."""

    weight: torch.Tensor = field(default_factory=lambda: randn(OUT_FEATURES, IN_FEATURES))
    calibration: list = field(default_factory=lambda: [randn(6, IN_FEATURES, seed=1)])
    inputs: torch.Tensor = field(default_factory=lambda: randn(5, IN_FEATURES, seed=2))
    bias: torch.Tensor | None = None
    dtype: torch.dtype = torch.float32
    error: type[Exception] | None = None
    fragment: str = ""
    stage: str = ""


def _x(*shape, seed=1, scale=1.0, dtype=torch.float32):
    return randn(*shape, seed=seed, dtype=torch.float32).mul(scale).to(dtype)


LAYER_CASES = {
    "zero-weight": LayerCase(weight=torch.zeros(OUT_FEATURES, IN_FEATURES)),
    "zero-inputs": LayerCase(calibration=[torch.zeros(6, IN_FEATURES)],
                             inputs=torch.zeros(5, IN_FEATURES)),
    "constant-channels": LayerCase(
        weight=torch.arange(OUT_FEATURES, dtype=torch.float32).unsqueeze(1).expand(
            OUT_FEATURES, IN_FEATURES).clone(),
        calibration=[torch.ones(6, IN_FEATURES)], inputs=torch.ones(5, IN_FEATURES)),
    "single-element": LayerCase(weight=torch.tensor([[0.5]]),
                                calibration=[torch.tensor([[2.0]])],
                                inputs=torch.tensor([[-3.0]])),
    "1-d-input": LayerCase(calibration=[_x(IN_FEATURES)], inputs=_x(IN_FEATURES, seed=2)),
    "3-d-input": LayerCase(calibration=[_x(2, 3, IN_FEATURES)],
                           inputs=_x(3, 2, IN_FEATURES, seed=2)),
    "4-d-input": LayerCase(calibration=[_x(2, 3, 5, IN_FEATURES)],
                           inputs=_x(1, 2, 3, IN_FEATURES, seed=2)),
    "zero-size-batch": LayerCase(calibration=[torch.zeros(0, IN_FEATURES), _x(6, IN_FEATURES)],
                                 inputs=torch.zeros(0, IN_FEATURES)),
    "only-zero-size-batches": LayerCase(
        calibration=[torch.zeros(0, IN_FEATURES), torch.zeros(0, 3, IN_FEATURES)],
        error=RuntimeError, fragment="layer: no calibration data yet", stage="calibrate"),
    "nan-calibration": LayerCase(calibration=[with_value(_x(6, IN_FEATURES), math.nan)],
                                 error=ValueError, stage="calibrate",
                                 fragment="layer: the calibration input contains 1 NaN/Inf"),
    "inf-calibration": LayerCase(calibration=[with_value(_x(6, IN_FEATURES), math.inf)],
                                 error=ValueError, stage="calibrate",
                                 fragment="layer: the calibration input contains 1 NaN/Inf"),
    "-inf-forward": LayerCase(inputs=with_value(_x(5, IN_FEATURES), -math.inf),
                              error=ValueError, stage="forward",
                              fragment="layer: the input contains 1 NaN/Inf"),
    "nan-weight": LayerCase(weight=with_value(randn(OUT_FEATURES, IN_FEATURES), math.nan),
                            error=ValueError, stage="build",
                            fragment="layer: the weight contains 1 NaN/Inf"),
    "inf-bias": LayerCase(bias=torch.tensor([0.0, math.inf, 0.0, 0.0]), error=ValueError,
                          stage="build", fragment="layer: the bias contains 1 NaN/Inf"),
    "1e38-input": LayerCase(weight=randn(OUT_FEATURES, IN_FEATURES) * 1e-3,
                            calibration=[with_value(_x(6, IN_FEATURES), 1e38)],
                            inputs=with_value(_x(5, IN_FEATURES), -1e38)),
    "1e37-weight": LayerCase(weight=randn(OUT_FEATURES, IN_FEATURES) * 1e37),
    "float32-max-weight": LayerCase(
        weight=_plus_minus_max(OUT_FEATURES, IN_FEATURES),
        error=ValueError, stage="build", fragment="layer.weight: the observed range"),
    "output-overflows-in-calibration": LayerCase(
        calibration=[_x(6, IN_FEATURES, scale=1e38)], error=ValueError, stage="calibrate",
        fragment="layer.output: the tensor contains NaN or Inf"),
    "output-overflows-in-forward": LayerCase(
        inputs=_x(5, IN_FEATURES, scale=1e38), error=ValueError, stage="forward",
        fragment="layer.output: the fp32 reference contains"),
    "denormal-inputs": LayerCase(calibration=[_x(6, IN_FEATURES, scale=DENORMAL)],
                                 inputs=_x(5, IN_FEATURES, seed=2, scale=DENORMAL)),
    "denormal-weight": LayerCase(weight=randn(OUT_FEATURES, IN_FEATURES) * DENORMAL),
    "float16-inputs": LayerCase(calibration=[_x(6, IN_FEATURES, dtype=torch.float16)],
                                inputs=_x(5, IN_FEATURES, seed=2, dtype=torch.float16)),
    "bfloat16-inputs": LayerCase(calibration=[_x(6, IN_FEATURES, dtype=torch.bfloat16)],
                                 inputs=_x(5, IN_FEATURES, seed=2, dtype=torch.bfloat16)),
    "bfloat16-layer": LayerCase(dtype=torch.bfloat16,
                                calibration=[_x(6, IN_FEATURES, dtype=torch.bfloat16)],
                                inputs=_x(5, IN_FEATURES, seed=2, dtype=torch.bfloat16)),
    "float16-layer": LayerCase(dtype=torch.float16),
    "transposed-inputs": LayerCase(calibration=[_x(IN_FEATURES, 6).t()],
                                   inputs=_x(IN_FEATURES, 5, seed=2).t()),
    "strided-inputs": LayerCase(calibration=[_x(12, 2 * IN_FEATURES)[::2, ::2]],
                                inputs=_x(10, 3 * IN_FEATURES, seed=2)[::2, 1::3]),
}


def _build(case: LayerCase, setup) -> QuantLinear:
    out_features, in_features = case.weight.shape
    linear = nn.Linear(in_features, out_features, bias=case.bias is not None)
    with torch.no_grad():
        linear.weight.copy_(case.weight)
        if case.bias is not None:
            linear.bias.copy_(case.bias)
    linear = linear.to(case.dtype)
    config = make_config(*setup)
    return QuantLinear(linear, out_config=config, weight_config=config, layer_name="layer")


def _run(case: LayerCase, setup, stage_reached: list) -> tuple[QuantLinear, torch.Tensor]:
    stage_reached.append("build")
    layer = _build(case, setup)
    stage_reached.append("calibrate")
    for batch in case.calibration:
        out = layer.calibration(batch)
        assert out.shape == (*batch.shape[:-1], layer.out_features)
    layer.compute_output_quant_params()
    stage_reached.append("forward")
    layer.mode = "quantized"
    return layer, layer(case.inputs)


def _assert_finite_results(layer: QuantLinear, y: torch.Tensor, case: LayerCase, mode: str):
    for name in ("weight_scaler", "weight_zero", "output_scaler", "output_zero"):
        value = getattr(layer, name)
        channels = layer.out_features if mode == "channel_wise" else 1
        assert value.shape == (channels,), name
        assert bool(torch.isfinite(value.float()).all()), name
    assert bool((layer.weight_scaler > 0).all() and (layer.output_scaler > 0).all())
    assert y.shape == (*case.inputs.shape[:-1], layer.out_features)
    assert y.dtype == torch.float32 and bool(torch.isfinite(y).all())
    results = layer.get_profiling_results()
    for part in ("weight", "output"):
        stats = results[part]["statistics"]
        if stats is None:  # nothing profiled yet (a zero-size forward)
            continue
        for key in ("qsnr", "mse", "mae", "max_abs_error", "cosine_similarity"):
            assert not math.isnan(stats[key]), (part, key, stats[key])
        assert not bool(torch.isnan(stats["per_channel_qsnr"]).any())
        counts = results[part]["histogram"]["fp32_counts"]
        assert int(counts.sum()) == stats["num_elements"]


@pytest.mark.parametrize("case_name", sorted(LAYER_CASES))
@pytest.mark.parametrize("observer,mode,method", SETUPS, ids=SETUP_IDS)
def test_quant_linear_on_awkward_tensor(observer, mode, method, case_name):
    case = LAYER_CASES[case_name]
    stage_reached: list = []
    if case.error is not None:
        with pytest.raises(case.error) as info:
            _run(case, (observer, mode, method), stage_reached)
        assert type(info.value) is case.error
        assert case.fragment in str(info.value)
        assert stage_reached[-1] == case.stage
        return
    layer, y = _run(case, (observer, mode, method), stage_reached)
    _assert_finite_results(layer, y, case, mode)


@pytest.mark.parametrize("case_name", ["transposed-inputs", "strided-inputs"])
def test_non_contiguous_inputs_give_the_same_result_as_contiguous(case_name):
    case = LAYER_CASES[case_name]
    setup = ("PercentileObserver", "channel_wise", "Affine")
    _, y = _run(case, setup, [])
    dense = LayerCase(calibration=[b.contiguous() for b in case.calibration],
                      inputs=case.inputs.contiguous())
    _, y_dense = _run(dense, setup, [])
    assert torch.equal(y, y_dense)


def test_quantized_forward_before_qparams_is_a_runtime_error():
    layer = _build(LayerCase(), ("MinmaxObserver", "layer_wise", "Uniform"))
    layer.calibration(_x(6, IN_FEATURES))
    layer.mode = "quantized"
    with pytest.raises(RuntimeError, match="layer: quantized forward before the output qparams"):
        layer(_x(5, IN_FEATURES))


@pytest.mark.parametrize("shape", [(5, IN_FEATURES + 1), (IN_FEATURES, 5), (5, 0), ()],
                         ids=["one-too-many", "transposed-shape", "zero-features", "0-d"])
def test_wrong_last_dimension_names_in_features(shape):
    layer = _build(LayerCase(), ("MinmaxObserver", "channel_wise", "Uniform"))
    with pytest.raises(ValueError, match=f"layer: calibration input has shape .*"
                                         f"in_features={IN_FEATURES}"):
        layer.calibration(torch.zeros(shape))


@pytest.mark.parametrize("mode", ["int8", "Quantized", "", None])
def test_unknown_mode_is_a_value_error(mode):
    layer = _build(LayerCase(), ("MinmaxObserver", "layer_wise", "Uniform"))
    with pytest.raises(ValueError, match="layer: unknown mode .*'fp32' or 'quantized'"):
        layer.mode = mode
    assert layer.mode == "fp32"


@pytest.mark.parametrize("out_features,in_features", [(0, IN_FEATURES), (OUT_FEATURES, 0)],
                         ids=["no-outputs", "no-inputs"])
def test_empty_weight_is_refused_at_construction(out_features, in_features):
    case = LayerCase(weight=torch.zeros(out_features, in_features))
    with pytest.raises(ValueError, match=r"layer: input_module needs a non-empty 2-D weight"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch: "Initializing zero-element ..."
        _build(case, ("MinmaxObserver", "channel_wise", "Uniform"))


# --- histogram counts past float32's exact-integer limit (2**24) -----------------------

PAST_2_24 = 2**24 + 7


def test_kl_histogram_counts_past_2_24_per_bin_are_exact():
    values = torch.full((1, PAST_2_24), 0.25)
    values[0, :3] = 1.0  # three values in the top bin
    hist, amax = abs_histogram(values, 64)
    assert hist.dtype == torch.int64 and float(amax) == 1.0
    assert int(hist[0, 16]) == PAST_2_24 - 3  # 0.25 * 64 bins / 1.0 = bin 16
    assert int(hist[0, 63]) == 3 and int(hist.sum()) == PAST_2_24


def test_kl_observer_past_2_24_values_gives_finite_qparams():
    obs = build_observer(make_config("KLObserver", "layer_wise", "Uniform"), name="big.t")
    values = torch.full((PAST_2_24,), 0.25)
    values[:1000] = torch.linspace(-1.0, 1.0, 1000)
    obs.update(values)
    scale, zero = obs.get_quantization_params()
    assert bool(torch.isfinite(scale).all()) and int(zero) == 0
    assert 0.25 / 127.5 <= float(scale) <= 1.0 / 127.5 + 1e-9


def test_profiler_histogram_counts_past_2_24_per_bin_are_exact():
    profiler = QuantProfiler("big.output", channel_axis=-1, num_bins=16)
    reference = torch.full((PAST_2_24,), 0.5)
    reference[:5] = -0.5
    profiler.update(reference, reference, torch.tensor([-1.0]), torch.tensor([1.0]))
    results = profiler.get_results()
    counts = results["histogram"]["fp32_counts"]
    assert counts.dtype == torch.int64 and int(counts.sum()) == PAST_2_24
    assert int(counts[12]) == PAST_2_24 - 5 and int(counts[4]) == 5  # 0.5 -> bin 12 of 16
    assert torch.equal(results["histogram"]["dequant_counts"], counts)
    assert results["statistics"]["qsnr"] == math.inf  # lossless, never NaN


@pytest.mark.parametrize("scale", [DENORMAL, 1e17, 1e37], ids=["denormal", "1e17", "1e37"])
def test_profiler_statistics_stay_finite_at_extreme_magnitudes(scale):
    profiler = QuantProfiler("p.output", channel_axis=-1)
    reference = randn(6, 4) * scale
    constant = torch.full((6, 4), scale)
    for ref in (reference, constant):
        profiler.reset()
        profiler.update(ref, ref * 0.5, ref.min().reshape(1), ref.max().reshape(1))
        stats = profiler.get_results()["statistics"]
        assert not math.isnan(stats["qsnr"]) and math.isfinite(stats["mse"])
        assert int(profiler.get_results()["histogram"]["fp32_counts"].sum()) == ref.numel()
