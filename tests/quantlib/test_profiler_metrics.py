"""Every number the profiler reports, against float64 formulas computed here from the fp32 and
dequantized tensors, at any float32 magnitude (1e-30 .. 1e30)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from quantlib.bit_type import BitType
from quantlib.profiler import QuantProfiler
from quantlib.quant_config import QuantConfig
from quantlib.quant_linear import QuantLinear
from quantlib.quantizers import Quantizer, calculate_qparams

MAGNITUDES = [1e-30, 1e-25, 1e-20, 1e-15, 1e-10, 1e-5, 1.0, 1e5, 1e10, 1e15, 1e17, 1e18,
              1e20, 1e25, 1e30]
SETUPS = [("layer_wise", "Uniform"), ("channel_wise", "Affine")]


def ref_qsnr(signal: float, noise: float) -> float:
    if noise == 0.0:
        return math.inf
    return 10.0 * math.log10(signal / noise) if signal > 0.0 else -math.inf


def reference_stats(x: torch.Tensor, x_hat: torch.Tensor, axis: int) -> dict:
    """The profiler's statistics in float64, straight from their definitions."""
    x, x_hat = x.double(), x_hat.double()
    err = x_hat - x
    rows = x.movedim(axis, 0).reshape(x.shape[axis], -1)
    err_rows = err.movedim(axis, 0).reshape(x.shape[axis], -1)
    ref_energy, quant_energy = float((x * x).sum()), float((x_hat * x_hat).sum())
    if ref_energy > 0 and quant_energy > 0:
        cosine = float((x * x_hat).sum()) / math.sqrt(ref_energy * quant_energy)
    else:  # the profiler's convention for a zero vector
        cosine = 1.0 if ref_energy == quant_energy else 0.0
    return {
        "qsnr": ref_qsnr(float((x * x).sum()), float((err * err).sum())),
        "mse": float((err * err).mean()),
        "mae": float(err.abs().mean()),
        "max_abs_error": float(err.abs().max()),
        "cosine_similarity": cosine,
        "num_elements": x.numel(),
        "per_channel_qsnr": [ref_qsnr(float((r * r).sum()), float((e * e).sum()))
                             for r, e in zip(rows, err_rows)],
    }


def assert_stats_match(stats: dict, expected: dict, db_tol: float = 1e-4) -> None:
    for key in ("mse", "mae", "max_abs_error"):
        assert stats[key] == pytest.approx(expected[key], rel=1e-5, abs=0.0), key
    assert stats["num_elements"] == expected["num_elements"]
    assert stats["cosine_similarity"] == pytest.approx(expected["cosine_similarity"], abs=1e-6)
    assert stats["qsnr"] == pytest.approx(expected["qsnr"], abs=db_tol)
    per_channel = stats["per_channel_qsnr"]
    assert per_channel.dtype == torch.float64
    assert per_channel.tolist() == pytest.approx(expected["per_channel_qsnr"], abs=db_tol)


def layer_with_weight(weight: torch.Tensor, config: QuantConfig) -> QuantLinear:
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        linear.weight.copy_(weight)
    return QuantLinear(linear, config, config, layer_name="extreme")


@pytest.mark.parametrize("mode,method", SETUPS, ids=["layer-Uniform", "channel-Affine"])
@pytest.mark.parametrize("magnitude", MAGNITUDES, ids=lambda m: f"{m:.0e}")
def test_weight_statistics_match_float64_at_any_magnitude(magnitude, mode, method):
    weight = (torch.randn(24, 40, generator=torch.Generator().manual_seed(3)).double()
              * magnitude).float()
    layer = layer_with_weight(weight, QuantConfig(calibration_mode=mode,
                                                  quantization_method=method))
    stats = layer.get_profiling_results()["weight"]["statistics"]
    assert_stats_match(stats, reference_stats(layer.weight, layer.dequant_weight, 0))
    assert stats["clip_fraction"] == 0.0  # MinMax covers every value
    if magnitude < 1e-6:  # below the eps scale floor every value rounds to zero: 0 dB, not inf
        assert not bool(layer.dequant_weight.any())
        assert stats["qsnr"] == 0.0 and stats["cosine_similarity"] == 0.0
    else:  # 8 bits on Gaussian data: about 40 dB whatever the magnitude
        assert 38.0 < stats["qsnr"] < 48.0


@pytest.mark.parametrize("magnitude", [1e-30, 1e-12, 1.0, 1e12, 1e30],
                         ids=lambda m: f"{m:.0e}")
def test_output_profiler_on_the_last_axis_matches_float64(magnitude):
    """Activations [..., C]: channels on the last axis, accumulated over two batches."""
    gen = torch.Generator().manual_seed(4)
    batches = [(torch.randn(5, 7, 6, generator=gen).double() * magnitude).float()
               for _ in range(2)]
    lo, hi = torch.aminmax(torch.cat(batches).reshape(-1, 6), dim=0)
    scale, zero = calculate_qparams(lo, hi, BitType(6, False), symmetric=False)
    quantizer = Quantizer(BitType(6, False), channel_axis=-1)
    quantizer.update_quantization_params(scale, zero)
    profiler = QuantProfiler("out", channel_axis=-1)
    for batch in batches:
        profiler.update(batch, quantizer(batch), *quantizer.clip_range(), scale)
    everything = torch.cat(batches)
    stats = profiler.get_results()["statistics"]
    assert_stats_match(stats, reference_stats(everything, quantizer(everything), -1))


def test_channels_from_1e_minus_30_to_1e30_in_one_tensor():
    """Per-channel sums must neither underflow nor overflow whatever the other channels hold:
    each channel, quantized on its own scale, keeps its own ~40 dB."""
    exponents = torch.arange(-30, 31, 5, dtype=torch.float64)
    gen = torch.Generator().manual_seed(5)
    weight = (torch.randn(len(exponents), 64, generator=gen).double()
              * (10.0 ** exponents)[:, None]).float()
    layer = layer_with_weight(weight, QuantConfig(calibration_mode="channel_wise"))
    stats = layer.get_profiling_results()["weight"]["statistics"]
    expected = reference_stats(layer.weight, layer.dequant_weight, 0)
    assert_stats_match(stats, expected)
    tiny = exponents < -6  # below the eps scale floor: everything rounds to 0
    per_channel = stats["per_channel_qsnr"]
    assert bool((per_channel[tiny] == 0.0).all())
    assert bool(((per_channel[~tiny] > 35.0) & (per_channel[~tiny] < 50.0)).all())


@pytest.mark.parametrize("exponent", [45, 58, 59, 62], ids=lambda e: f"2^{e}")
def test_long_rows_of_large_values_do_not_overflow(exponent):
    """Rows of 4096 values near 2**e: each row's float32 sum of squares would exceed 3.4e38."""
    gen = torch.Generator().manual_seed(6)
    weight = ((1.0 + torch.rand(3, 4096, generator=gen, dtype=torch.float64))
              * 2.0**exponent).float()
    layer = layer_with_weight(weight, QuantConfig(calibration_mode="channel_wise",
                                                  quantization_method="Affine"))
    stats = layer.get_profiling_results()["weight"]["statistics"]
    assert_stats_match(stats, reference_stats(layer.weight, layer.dequant_weight, 0))
    assert math.isfinite(stats["qsnr"]) and stats["qsnr"] > 40.0


@pytest.mark.parametrize("values", [
    [[3e-39, -1e-40, 1e-45, 0.0], [2.5, -1.0, 0.5, 0.25]],
    [[1e-20, -2e-20, 5e-21, 0.0], [0.0, 0.0, 0.0, 0.0]],
], ids=["denormals-next-to-normal", "tiny-next-to-zero-row"])
def test_denormal_and_zero_channels(values):
    """Per-tensor quantization with denormal/tiny rows: those rows quantize to zero (0 dB),
    an all-zero row is lossless (+inf), and the tensor totals stay right."""
    weight = torch.tensor(values, dtype=torch.float32)
    layer = layer_with_weight(weight, QuantConfig())
    stats = layer.get_profiling_results()["weight"]["statistics"]
    assert_stats_match(stats, reference_stats(layer.weight, layer.dequant_weight, 0))
    assert stats["per_channel_qsnr"][0] == 0.0


def test_tiny_error_on_an_otherwise_lossless_channel_is_not_reported_lossless():
    """One error of 1e-30 next to exactly representable values: its square underflows in
    float32, but the channel is not lossless (about 600 dB, not +inf)."""
    reference = torch.tensor([[1.0, 2.0, -3.0, 1e-30], [1.0, 2.0, 3.0, 4.0]])
    quantized = torch.tensor([[1.0, 2.0, -3.0, 0.0], [1.0, 2.0, 3.0, 4.0]])
    profiler = QuantProfiler("p", channel_axis=0)
    profiler.update(reference, quantized, torch.tensor([-8.0]), torch.tensor([7.0]),
                    torch.tensor([1.0]))
    stats = profiler.get_results()["statistics"]
    assert stats["per_channel_qsnr"][0] == pytest.approx(10 * math.log10(14 / 1e-60), abs=1e-3)
    assert stats["per_channel_qsnr"][1] == math.inf
    assert stats["qsnr"] == pytest.approx(10 * math.log10(44 / 1e-60), abs=1e-3)
    assert stats["max_abs_error"] == pytest.approx(1e-30, rel=1e-6)


def test_per_channel_qsnr_is_signal_over_noise_per_channel():
    """Channels with very different QSNRs (one value far off in channel 1): the order of signal
    and noise and the channel each belongs to both matter."""
    reference = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    quantized = torch.tensor([[1.0, 2.0, 3.5], [1.0, 2.0, 0.0], [4.0, 0.0, 0.0]])
    profiler = QuantProfiler("p", channel_axis=0)
    profiler.update(reference, quantized, torch.tensor([-8.0]), torch.tensor([7.0]))
    per_channel = profiler.get_results()["statistics"]["per_channel_qsnr"].tolist()
    assert per_channel[0] == pytest.approx(10 * math.log10(14 / 0.25), abs=1e-5)
    assert per_channel[1] == pytest.approx(10 * math.log10(14 / 9), abs=1e-5)
    assert per_channel[2] == math.inf


def test_mae_is_the_mean_not_the_max_error():
    reference = torch.tensor([0.0, 1.0, 2.0, 3.0])
    quantized = torch.tensor([0.5, 1.0, 2.0, 1.0])  # errors 0.5, 0, 0, 2
    profiler = QuantProfiler("p")
    profiler.update(reference, quantized, torch.tensor([-8.0]), torch.tensor([7.0]))
    stats = profiler.get_results()["statistics"]
    assert stats["mae"] == pytest.approx(2.5 / 4)
    assert stats["max_abs_error"] == 2.0
    assert stats["mse"] == pytest.approx(4.25 / 4)
    assert stats["cosine_similarity"] == pytest.approx(8.0 / math.sqrt(14 * 6.25))


def test_statistics_accumulate_over_updates():
    gen = torch.Generator().manual_seed(7)
    parts = [torch.randn(3, 10, generator=gen) for _ in range(3)]
    noisy = [p + 0.05 * torch.randn(3, 10, generator=gen) for p in parts]
    profiler = QuantProfiler("p", channel_axis=0)
    for ref, deq in zip(parts, noisy):
        profiler.update(ref, deq, torch.tensor([-9.0]), torch.tensor([9.0]))
    stats = profiler.get_results()["statistics"]
    assert_stats_match(stats, reference_stats(torch.cat(parts, 1), torch.cat(noisy, 1), 0),
                       db_tol=1e-5)
    profiler.reset()
    assert profiler.get_results()["statistics"] is None


def test_lossless_and_zero_tensors_are_plus_infinity():
    for tensor in (torch.zeros(3, 4), torch.arange(-6.0, 6.0).reshape(3, 4)):
        profiler = QuantProfiler("p", channel_axis=0)
        profiler.update(tensor, tensor.clone(), torch.tensor([-8.0]), torch.tensor([7.0]))
        stats = profiler.get_results()["statistics"]
        assert stats["qsnr"] == math.inf
        assert stats["per_channel_qsnr"].tolist() == [math.inf] * 3
        assert stats["mse"] == stats["mae"] == stats["max_abs_error"] == 0.0
        assert stats["cosine_similarity"] == 1.0


def test_all_zero_dequantized_values_give_0_db_and_cosine_0():
    reference = torch.tensor([[1.0, -2.0], [0.0, 0.0]])
    profiler = QuantProfiler("p", channel_axis=0)
    profiler.update(reference, torch.zeros(2, 2), torch.tensor([-8.0]), torch.tensor([7.0]))
    stats = profiler.get_results()["statistics"]
    assert stats["qsnr"] == 0.0 and stats["cosine_similarity"] == 0.0
    assert stats["per_channel_qsnr"].tolist() == [0.0, math.inf]


@pytest.mark.parametrize("exponent", [-149, -126, -100, 100, 127], ids=lambda e: f"2^{e}")
def test_profiler_handles_the_ends_of_float32(exponent):
    """Down to the smallest denormal and up to 2**127: finite sums, right numbers."""
    reference = torch.tensor([[2.0**exponent, -(2.0**exponent), 0.0],
                              [2.0**exponent, 2.0**exponent, 2.0**exponent]])
    quantized = reference * torch.tensor([[0.5, 1.0, 0.0], [1.0, 1.0, 1.0]])
    profiler = QuantProfiler("p", channel_axis=0)
    profiler.update(reference, quantized, torch.tensor([-(2.0**127)]),
                    torch.tensor([2.0**127]))
    assert_stats_match(profiler.get_results()["statistics"],
                       reference_stats(reference, quantized, 0))
