"""Properties of observer-driven quantization on generated shapes, bit widths and data:
codes stay in [qmin, qmax], dequantized values are finite, and MinMax keeps every value
within one step of the grid. Per-channel shapes on either axis."""

from __future__ import annotations

import os

import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from quantlib.bit_type import BitType
from quantlib.observers import build_observer
from quantlib.quant_config import OBSERVER_TYPES, QuantConfig
from quantlib.quantizers import Quantizer, calculate_qparams

FUZZ = settings(max_examples=int(os.environ.get("QL_FUZZ_EXAMPLES", "120")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

FLOAT32_MAX = torch.finfo(torch.float32).max
EPS = torch.finfo(torch.float32).eps

float32s = st.floats(width=32, allow_nan=False, allow_infinity=False)
moderate = st.floats(-1e6, 1e6, width=32, allow_nan=False)


@st.composite
def channel_data(draw, values=float32s):
    """(tensor [C, N] or [N, C], channel axis)."""
    channels = draw(st.integers(1, 5))
    per_channel = draw(st.integers(1, 12))
    flat = draw(st.lists(values, min_size=channels * per_channel,
                         max_size=channels * per_channel))
    x = torch.tensor(flat, dtype=torch.float32).reshape(channels, per_channel)
    if draw(st.booleans()):
        return x.t(), 1  # channels on the last axis, and a non-contiguous view
    return x, 0


setups = st.fixed_dictionaries({
    "observer": st.sampled_from(OBSERVER_TYPES),
    "mode": st.sampled_from(["layer_wise", "channel_wise"]),
    "method": st.sampled_from(["Uniform", "Affine"]),
    "bits": st.integers(2, 16),
    "signed": st.booleans(),
})


def _observe(setup, x, axis):
    config = QuantConfig(calibration_mode=setup["mode"], observer_type=setup["observer"],
                         quantization_method=setup["method"], kl_bins=64, omse_steps=20,
                         bit_type=BitType(setup["bits"], setup["signed"]))
    obs = build_observer(config, channel_axis=axis, name="fuzz.t")
    obs.update(x)
    return obs


def _grid_is_finite(obs) -> bool:
    """Whether the observed range fits float32 quantization at all (see base.py)."""
    lo, hi = obs.compute_range()
    scale, zero = calculate_qparams(lo, hi, obs.bit_type, obs.config.is_symmetric)
    ends = torch.stack([obs.bit_type.qmin - zero, obs.bit_type.qmax - zero]) * scale
    return bool(torch.isfinite(ends).all())


@FUZZ
@given(setup=setups, data=channel_data())
@example(setup={"observer": "KLObserver", "mode": "channel_wise", "method": "Affine",
                "bits": 8, "signed": True},
         data=(torch.tensor([[1e-42, -1e-45, 0.0], [0.0, 0.0, 0.0]]), 0))  # denormal KL
@example(setup={"observer": "MinmaxObserver", "mode": "layer_wise", "method": "Affine",
                "bits": 2, "signed": False},
         data=(torch.tensor([[FLOAT32_MAX, -FLOAT32_MAX]]), 0))  # scale overflow
@example(setup={"observer": "KLObserver", "mode": "layer_wise", "method": "Uniform",
                "bits": 4, "signed": True},
         data=(torch.tensor([[1e38, -2e37, 3.0]]), 0))  # amax * bins overflow
def test_observed_qparams_give_in_range_codes_and_finite_values(setup, data):
    x, axis = data
    obs = _observe(setup, x, axis)
    bt = obs.bit_type
    if not _grid_is_finite(obs):
        try:
            obs.get_quantization_params()
        except ValueError as err:
            assert "fuzz.t: the observed range" in str(err) and "too wide" in str(err)
            return
        raise AssertionError("an overflowing grid must be refused")
    scale, zero = obs.get_quantization_params()
    channels = x.shape[axis] if setup["mode"] == "channel_wise" else 1
    assert scale.shape == zero.shape == (channels,)
    assert bool(torch.isfinite(scale).all() and (scale >= EPS).all())
    assert bool(((zero >= bt.qmin) & (zero <= bt.qmax)).all())
    quantizer = Quantizer(bt, channel_axis=axis)
    quantizer.update_quantization_params(scale, zero)
    codes = quantizer.quant(x)
    assert codes.shape == x.shape and codes.dtype == torch.int32
    assert bool(((codes >= bt.qmin) & (codes <= bt.qmax)).all())
    dequant = quantizer.dequantize(codes)
    assert bool(torch.isfinite(dequant).all())
    assert torch.equal(dequant, quantizer(x))
    lo, hi = quantizer.clip_range()
    shape = [1] * x.dim()
    shape[axis] = -1
    assert bool(((dequant >= lo.reshape(shape)) & (dequant <= hi.reshape(shape))).all())


@FUZZ
@given(setup=setups.filter(lambda s: s["observer"] == "MinmaxObserver"),
       data=channel_data(moderate))
@example(setup={"observer": "MinmaxObserver", "mode": "channel_wise", "method": "Uniform",
                "bits": 2, "signed": False}, data=(torch.tensor([[0.0, 1.0, 1.0]]), 0))
def test_minmax_keeps_every_value_within_one_step(setup, data):
    """MinMax's grid covers the data (zero-point rounding moves it by at most half a step),
    so no value is more than one step from its dequantized value; Uniform: half a step."""
    x, axis = data
    obs = _observe(setup, x, axis)
    scale, zero = obs.get_quantization_params()
    quantizer = Quantizer(obs.bit_type, channel_axis=axis)
    quantizer.update_quantization_params(scale, zero)
    shape = [1] * x.dim()
    shape[axis] = -1
    step = scale.reshape(shape) if scale.numel() > 1 else scale
    bound = (0.5 if setup["method"] == "Uniform" else 1.0) * step * (1 + 1e-5)
    error = (quantizer(x) - x).abs()
    assert bool((error <= bound + x.abs() * 1e-6).all()), (error.max(), step)


@FUZZ
@given(setup=setups, data=channel_data(moderate), batches=st.integers(2, 3))
def test_split_batches_give_the_same_qparams_as_one_batch(setup, data, batches):
    """Calibrating on the same data split into batches (along the non-channel axis, some
    parts possibly empty) gives the qparams of one batch: every observer but EMA looks at all
    values at once. EMA follows m * old + (1 - m) * batch, checked with a loop here."""
    x, axis = data
    whole = _observe(setup, x, axis)
    parts = torch.tensor_split(x, batches, dim=1 - axis)
    split = _observe(setup, parts[0], axis)
    for part in parts[1:]:
        split.update(part)  # empty parts are skipped
    assert split.num_observed == whole.num_observed
    scale, zero = split.get_quantization_params()
    bt = split.bit_type
    assert bool(torch.isfinite(scale).all() and (scale >= EPS).all())
    assert bool(((zero >= bt.qmin) & (zero <= bt.qmax)).all())
    if setup["observer"] != "EmaMinmaxObserver":
        whole_scale, whole_zero = whole.get_quantization_params()
        assert torch.equal(scale, whole_scale) and torch.equal(zero, whole_zero)
        return
    dims = [d for d in range(x.dim()) if d != axis] if setup["mode"] == "channel_wise" \
        else list(range(x.dim()))
    momentum, low, high = split.config.ema_momentum, None, None
    for part in parts:
        if part.numel() == 0:
            continue
        p_low, p_high = part.double().amin(dim=dims), part.double().amax(dim=dims)
        if low is None:
            low, high = p_low, p_high
        else:
            low = momentum * low + (1 - momentum) * p_low
            high = momentum * high + (1 - momentum) * p_high
    got_low, got_high = split.compute_range()
    torch.testing.assert_close(got_low.double().reshape(-1), low.reshape(-1), rtol=1e-5,
                               atol=1e-6)
    torch.testing.assert_close(got_high.double().reshape(-1), high.reshape(-1), rtol=1e-5,
                               atol=1e-6)
