"""The integer grid: bit-identical to torch's fake-quant kernels, and the theory's QSNR."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quantlib.bit_type import BitType
from quantlib.errors import ConfigError
from quantlib.quantizers import Quantizer, calculate_qparams, dequantize, fake_quantize, quantize

BIT_TYPES = [BitType(b, s) for b in range(2, 17) for s in (True, False)]
METHODS = [True, False]


def _data_with_ties(scale: float, shape=(32, 40), seed=0) -> torch.Tensor:
    """Random data plus exact .5 ties of the grid (x * (1/scale) lands on k + 0.5)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen) * 3
    ties = (torch.arange(-6, 6, dtype=torch.float32) + 0.5) * scale
    x.view(-1)[: ties.numel()] = ties
    return x


@pytest.mark.parametrize("bit_type", BIT_TYPES, ids=lambda b: b.name)
@pytest.mark.parametrize("symmetric", METHODS, ids=["Uniform", "Affine"])
def test_per_tensor_matches_torch_fake_quantize(bit_type, symmetric):
    x = _data_with_ties(0.25)
    scale, zero = calculate_qparams(x.min().reshape(1), x.max().reshape(1), bit_type, symmetric)
    x = _data_with_ties(float(scale))  # ties exactly on this grid
    ref = torch.fake_quantize_per_tensor_affine(x, scale, zero.int(), bit_type.qmin,
                                                bit_type.qmax)
    assert torch.equal(fake_quantize(x, scale, zero, bit_type), ref)
    codes = quantize(x, scale, zero, bit_type)
    assert torch.equal(dequantize(codes, scale, zero), ref)


@pytest.mark.parametrize("bit_type", BIT_TYPES, ids=lambda b: b.name)
@pytest.mark.parametrize("symmetric", METHODS, ids=["Uniform", "Affine"])
@pytest.mark.parametrize("axis", [0, 1], ids=["axis0", "axis1"])
def test_per_channel_matches_torch_fake_quantize(bit_type, symmetric, axis):
    x = _data_with_ties(0.125)
    scale, zero = calculate_qparams(x.amin(dim=1 - axis), x.amax(dim=1 - axis), bit_type,
                                    symmetric)
    ref = torch.fake_quantize_per_channel_affine(x, scale, zero.int(), axis, bit_type.qmin,
                                                 bit_type.qmax)
    assert torch.equal(fake_quantize(x, scale, zero, bit_type, axis), ref)
    q = Quantizer(bit_type, channel_axis=axis)
    q.update_quantization_params(scale, zero)
    assert torch.equal(q.dequantize(q.quant(x)), ref)
    assert torch.equal(q(x), ref)


def test_round_half_even_on_ties():
    bt = BitType(8, True)
    scale, zero = torch.tensor([1.0]), torch.tensor([0])
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, -2.5])
    assert quantize(x, scale, zero, bt).tolist() == [0, 2, 2, 0, -2, -2]


@pytest.mark.parametrize("bits", [2, 4, 6, 8, 12, 16])
def test_full_range_uniform_data_reaches_theoretical_qsnr(bits):
    """Affine quantization of U(-1, 1) over its full range: QSNR = 20*log10(2^b - 1)."""
    gen = torch.Generator().manual_seed(bits)
    x = torch.rand(2_000_000, generator=gen, dtype=torch.float64).float() * 2 - 1
    bt = BitType(bits, True)
    scale, zero = calculate_qparams(x.min().reshape(1), x.max().reshape(1), bt, False)
    err = fake_quantize(x, scale, zero, bt).double() - x.double()
    qsnr = 10 * math.log10(x.double().pow(2).sum() / err.pow(2).sum())
    assert qsnr == pytest.approx(20 * math.log10(2**bits - 1), abs=0.15)


def test_scale_floor_for_zero_and_constant_tensors():
    bt = BitType(8, True)
    for symmetric in METHODS:
        scale, zero = calculate_qparams(torch.zeros(3), torch.zeros(3), bt, symmetric)
        assert torch.all(scale == torch.finfo(torch.float32).eps)
        assert torch.all(fake_quantize(torch.zeros(3, 4), scale, zero, bt) == 0)


def test_zero_is_representable_for_one_sided_ranges():
    """torch.ao's rule: data in [1, 2] is quantized over [0, 2], so nothing is clipped."""
    bt = BitType(8, False)
    x = torch.linspace(1, 2, 101)
    scale, zero = calculate_qparams(x.min().reshape(1), x.max().reshape(1), bt, False)
    assert int(zero) == 0
    assert (fake_quantize(x, scale, zero, bt) - x).abs().max() <= float(scale) / 2 + 1e-7


def test_quantizer_requires_params_first():
    with pytest.raises(RuntimeError, match="no qparams"):
        Quantizer(BitType(8, True))(torch.ones(3))


@pytest.mark.parametrize("bits", [0, 1, 17, 7.5, "eight", True])
def test_bit_type_rejects_bad_bits(bits):
    with pytest.raises(ConfigError, match="from 2 to 16"):
        BitType(bits, True)


@pytest.mark.parametrize("bits,signed,qmin,qmax", [(8, True, -128, 127), (8, False, 0, 255),
                                                   (4, True, -8, 7), (16, False, 0, 65535)])
def test_bit_type_range(bits, signed, qmin, qmax):
    bt = BitType(bits, signed)
    assert (bt.qmin, bt.qmax, bt.name) == (qmin, qmax, f"{'int' if signed else 'uint'}{bits}")


# --- properties ---------------------------------------------------------------------------

finite_floats = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, width=32)


@settings(max_examples=150, deadline=None)
@given(values=st.lists(finite_floats, min_size=1, max_size=64),
       bits=st.integers(2, 16), signed=st.booleans(), symmetric=st.booleans())
def test_quantizer_properties(values, bits, signed, symmetric):
    bt = BitType(bits, signed)
    x = torch.tensor(values, dtype=torch.float32)
    scale, zero = calculate_qparams(x.min().reshape(1), x.max().reshape(1), bt, symmetric)
    codes = quantize(x, scale, zero, bt)
    assert bool((codes >= bt.qmin).all() and (codes <= bt.qmax).all())
    deq = dequantize(codes, scale, zero)
    # idempotent: dequantized values are grid points
    assert torch.equal(fake_quantize(deq, scale, zero, bt), deq)
    # inside the clip range the error is at most half a step (plus float32 rounding of x/scale)
    lo, hi = (bt.qmin - zero).float() * scale, (bt.qmax - zero).float() * scale
    inside = (x >= lo) & (x <= hi)
    err = (deq - x).abs()[inside]
    float_slack = x.abs()[inside] * 4 * torch.finfo(torch.float32).eps
    assert bool((err <= scale / 2 + float_slack).all())
    assert torch.equal(deq, torch.fake_quantize_per_tensor_affine(
        x, scale, zero.int(), bt.qmin, bt.qmax))


@pytest.mark.parametrize("channel", [0, 1, 2])
def test_levels_are_one_channels_grid(channel):
    """levels(c) = (code - zp[c]) * scale[c] for every code, in float64 here."""
    quantizer = Quantizer(BitType(3, False), channel_axis=0)
    scales, zeros = [0.5, 0.125, 3.0], [0, 5, 7]
    quantizer.update_quantization_params(torch.tensor(scales), torch.tensor(zeros))
    expected = [(code - zeros[channel]) * scales[channel] for code in range(8)]
    levels = quantizer.levels(channel)
    assert levels.dtype == torch.float32 and levels.tolist() == expected


def test_levels_of_a_per_tensor_quantizer_serve_every_channel():
    quantizer = Quantizer(BitType(2, True))
    quantizer.update_quantization_params(torch.tensor([0.75]), torch.tensor([1]))
    for channel in (0, 5):
        assert quantizer.levels(channel).tolist() == [-2.25, -1.5, -0.75, 0.0]
