"""QuantLinear: the seed's workflow, exactness against torch, profiling and clear errors."""

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from quantlib.bit_type import BitType
from quantlib.config_loader import load_config_from_yaml
from quantlib.profiler import QuantProfiler, beyond_half_step
from quantlib.quant_config import QuantConfig
from quantlib.quant_linear import QuantLinear
from quantlib.quant_linear import test_quantlinear_profiling as seed_self_test
from quantlib.quantizers import Quantizer

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "attn_config.yaml"


def make_linear(out_features=48, in_features=32, seed=0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(in_features, out_features)


def calibrated(layer: QuantLinear, batches: int = 4, seed: int = 1) -> QuantLinear:
    gen = torch.Generator().manual_seed(seed)
    for _ in range(batches):
        layer.calibration(torch.randn(16, layer.in_features, generator=gen))
    layer.compute_output_quant_params()
    layer.mode = "quantized"
    return layer


def test_seed_usage_example_runs_as_written():
    configs = load_config_from_yaml(CONFIG)
    linear = nn.Linear(64, 96)
    layer = QuantLinear(input_module=linear, out_config=configs["output"],
                        weight_config=configs["weight"], layer_name="test_layer")
    for x in [torch.randn(8, 64) for _ in range(4)]:
        layer.calibration(x)
    (weight_params, output_params) = layer.compute_output_quant_params()
    layer.mode = "quantized"
    x = torch.randn(8, 64)
    y = layer(x)
    results = layer.get_profiling_results()
    assert weight_params[0].shape == (96,) and output_params[0].shape == (96,)
    ref = linear(x).detach().double()
    out_noise = (y.double() - ref).pow(2).sum()
    assert results["output"]["statistics"]["qsnr"] == pytest.approx(
        float(10 * torch.log10(ref.pow(2).sum() / out_noise)), abs=1e-4)
    w = linear.weight.detach().double()
    w_noise = (layer.dequant_weight.double() - w).pow(2).sum()
    assert results["weight"]["statistics"]["qsnr"] == pytest.approx(
        float(10 * torch.log10(w.pow(2).sum() / w_noise)), abs=1e-4)
    assert results["weight"]["statistics"]["qsnr"] > 35.0  # 8-bit per-channel weights


def test_self_test_passes():
    assert seed_self_test() == []


def test_quantized_forward_equals_torch_fake_quant_pipeline():
    configs = load_config_from_yaml(CONFIG)
    linear = make_linear()
    layer = calibrated(QuantLinear(linear, configs["output"], configs["weight"]))
    x = torch.randn(10, 32)
    w_bt, o_bt = configs["weight"].bit_type, configs["output"].bit_type
    w_ref = torch.fake_quantize_per_channel_affine(
        linear.weight.detach(), layer.weight_scaler, layer.weight_zero.int(), 0, w_bt.qmin,
        w_bt.qmax)
    out = F.linear(x, w_ref, linear.bias.detach())
    ref = torch.fake_quantize_per_channel_affine(out, layer.output_scaler,
                                                 layer.output_zero.int(), 1, o_bt.qmin, o_bt.qmax)
    assert torch.equal(layer(x), ref)
    assert torch.equal(layer.dequant_weight, w_ref)


def test_weight_quantized_at_init_and_calibration_touches_only_outputs():
    cfg = QuantConfig(calibration_mode="layer_wise")
    layer = QuantLinear(make_linear(), cfg, cfg)
    assert layer.quant_weight.dtype == torch.int32
    assert layer.weight_observer.num_observed == 48 * 32
    scale = layer.weight_scaler.clone()
    layer.calibration(torch.randn(5, 32))
    assert torch.equal(layer.weight_scaler, scale)
    assert layer.output_observer.num_observed == 5 * 48


def test_fp32_mode_is_the_plain_linear():
    linear = make_linear()
    layer = QuantLinear(linear, QuantConfig(), QuantConfig())
    x = torch.randn(3, 32)
    assert torch.equal(layer(x), linear(x).detach())


def test_profiler_compares_against_true_fp32_output():
    linear = make_linear()
    layer = calibrated(QuantLinear(linear, QuantConfig(), QuantConfig()))
    xs = [torch.randn(7, 32) for _ in range(3)]
    outs = [layer(x) for x in xs]
    ref = torch.cat([linear(x).detach() for x in xs])
    got = torch.cat(outs)
    stats = layer.get_profiling_results()["output"]["statistics"]
    signal = ref.double().pow(2).sum()
    noise = (got.double() - ref.double()).pow(2).sum()
    assert stats["qsnr"] == pytest.approx(float(10 * torch.log10(signal / noise)), abs=1e-6)
    assert stats["mse"] == pytest.approx(float(noise / ref.numel()), rel=1e-6)
    assert stats["num_elements"] == ref.numel()
    assert stats["per_channel_qsnr"].shape == (48,)
    cos = F.cosine_similarity(ref.flatten().double(), got.flatten().double(), dim=0)
    assert stats["cosine_similarity"] == pytest.approx(float(cos), abs=1e-6)  # float32 sums


def test_profiling_result_sections():
    act = QuantConfig(calibration_mode="channel_wise")
    layer = calibrated(QuantLinear(make_linear(), QuantConfig(), QuantConfig(), act_config=act))
    layer(torch.randn(4, 32))
    res = layer.get_profiling_results()
    assert set(res) == {"weight", "output", "activation"}
    for section in res.values():
        assert set(section) == {"statistics", "histogram", "time", "memory"}
        hist = section["histogram"]
        assert len(hist["edges"]) == len(hist["fp32_counts"]) + 1 <= 513
        assert int(hist["fp32_counts"].sum()) == int(hist["dequant_counts"].sum())
    weight_mem = res["weight"]["memory"]
    assert weight_mem["fp32_bytes"] == 48 * 32 * 4
    assert weight_mem["quantized_bytes"] == 48 * 32
    assert res["activation"]["statistics"]["per_channel_qsnr"].shape == (32,)
    assert "forward_ms" in res["output"]["time"] and "observe_ms" in res["weight"]["time"]


def test_input_fake_quant_is_applied_first():
    act = QuantConfig(bit_type=BitType(4, True))
    linear = make_linear()
    layer = calibrated(QuantLinear(linear, QuantConfig(bit_type=BitType(16, True)),
                                   QuantConfig(bit_type=BitType(16, True)), act_config=act))
    x = torch.randn(6, 32)
    x_q = layer.input_quantizer(x)
    assert not torch.equal(x_q, x)
    expected = layer.output_quantizer(F.linear(x_q, layer.dequant_weight, linear.bias.detach()))
    assert torch.equal(layer(x), expected)


def test_lossless_weight_reports_infinite_qsnr():
    """Weights already on the grid (integers, scale 1) quantize without error: +inf dB."""
    linear = nn.Linear(4, 3, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[-128.0, 1, 2, 3], [-1, 0, 1, 2], [127, 2, 1, 0]]))
    cfg = QuantConfig(calibration_mode="layer_wise", bit_type=BitType(8, True),
                      quantization_method="Affine")
    layer = QuantLinear(linear, cfg, cfg)
    assert float(layer.weight_scaler) == 1.0 and int(layer.weight_zero) == 0
    stats = layer.get_profiling_results()["weight"]["statistics"]
    assert stats["qsnr"] == math.inf and stats["mse"] == 0.0
    assert stats["per_channel_qsnr"].tolist() == [math.inf] * 3  # +inf, never -inf or NaN


@pytest.mark.parametrize("bad,error,fragment", [
    (torch.randn(4, 31), ValueError, "in_features=32"),
    (torch.tensor([[float("nan")] * 32]), ValueError, "calibration input contains 32 NaN/Inf"),
    ("text", TypeError, "torch.Tensor"),
], ids=["wrong-shape", "nan", "not-a-tensor"])
def test_bad_calibration_input(bad, error, fragment):
    layer = QuantLinear(make_linear(), QuantConfig(), QuantConfig(), layer_name="blk.fc1")
    with pytest.raises(error, match=fragment) as info:
        layer.calibration(bad)
    assert "blk.fc1" in str(info.value)


def test_non_finite_weight_names_layer_and_tensor():
    linear = make_linear()
    with torch.no_grad():
        linear.weight[0, 0] = float("inf")
    with pytest.raises(ValueError, match="fc2: the weight contains 1 NaN/Inf"):
        QuantLinear(linear, QuantConfig(), QuantConfig(), layer_name="fc2")


def test_quantized_forward_before_qparams_says_what_to_do():
    layer = QuantLinear(make_linear(), QuantConfig(), QuantConfig())
    layer.mode = "quantized"
    with pytest.raises(RuntimeError, match="compute_output_quant_params"):
        layer(torch.randn(2, 32))
    with pytest.raises(RuntimeError, match="calibration"):
        layer.compute_output_quant_params()


def test_unknown_mode_is_refused():
    layer = QuantLinear(make_linear(), QuantConfig(), QuantConfig())
    with pytest.raises(ValueError, match="'fp32' or 'quantized'"):
        layer.mode = "int8"
    assert layer.mode == "fp32"


def test_layer_moves_with_to_and_state_dict_keeps_codes():
    layer = calibrated(QuantLinear(make_linear(), QuantConfig(), QuantConfig(),
                                   act_config=QuantConfig()))
    state = layer.state_dict()
    assert state["quant_weight"].dtype == torch.int32
    assert torch.equal(state["weight_quantizer.scale"], layer.weight_scaler)
    layer.to("meta")
    for name in ("weight", "bias", "quant_weight", "dequant_weight", "weight_scaler",
                 "weight_zero", "output_scaler", "output_zero", "input_scaler", "input_zero"):
        assert getattr(layer, name).device.type == "meta", name
    assert layer.quant_weight.dtype == torch.int32 and layer.weight_zero.dtype == torch.int64
    assert layer.weight_scaler is layer.weight_quantizer.scale


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none in CI)")
def test_seed_example_on_cuda():
    configs = load_config_from_yaml(CONFIG)
    linear = make_linear(768, 768).cuda()
    layer = QuantLinear(linear, configs["output"], configs["weight"], "cuda_layer")
    for _ in range(4):
        layer.calibration(torch.randn(64, 768, device="cuda"))
    (ws, _), (os_, oz) = layer.compute_output_quant_params()
    assert ws.is_cuda and os_.is_cuda and oz.is_cuda
    layer.mode = "quantized"
    y = layer(torch.randn(64, 768, device="cuda"))
    assert y.is_cuda
    cpu = QuantLinear(make_linear(768, 768).cpu(), configs["output"], configs["weight"])
    assert torch.equal(cpu.quant_weight, layer.quant_weight.cpu())
    assert layer.get_profiling_results()["output"]["statistics"]["qsnr"] > 25


def test_minmax_clips_nothing_and_percentile_reports_its_clipping():
    torch.manual_seed(0)
    linear = nn.Linear(32, 48)
    minmax = QuantConfig(calibration_mode="channel_wise")
    layer = QuantLinear(linear, minmax, minmax)
    assert layer.get_profiling_results()["weight"]["statistics"]["clip_fraction"] == 0.0
    pct = QuantConfig(observer_type="PercentileObserver", percentile_alpha=0.9)
    pct_layer = QuantLinear(linear, minmax, pct)
    clipped = pct_layer.get_profiling_results()["weight"]["statistics"]
    # float64: beyond the grid's ends [(qmin - zp) * s, (qmax - zp) * s] by over half a step
    w = linear.weight.detach().double()
    s = pct_layer.weight_scaler.double()[:, None]
    zp = pct_layer.weight_zero.double()[:, None]
    lo, hi = (-128 - zp) * s, (127 - zp) * s
    beyond = int(((w < lo - s / 2) | (w > hi + s / 2)).sum())
    assert 0.15 * w.numel() < beyond < 0.25 * w.numel()  # ~10% beyond each tail
    assert clipped["clip_fraction"] * w.numel() == pytest.approx(beyond, abs=1e-9)


@pytest.mark.parametrize("values,expected", [
    ([127.4, 127.5, 127.6, 128.9, 129.6, 0.0, 50.2], 3),
    ([-128.4, -128.5, -128.6, -129.9, -130.6, -3.5, 0.0], 3),
    ([-128.55, -128.45, 127.45, 127.55, 1.0, 2.0, 3.0], 2),
], ids=["upper", "lower", "both-near-edge"])
def test_clipped_means_beyond_the_range_by_over_half_a_step(values, expected):
    """int8, scale 1, zero 0: the grid ends at -128 and 127. Values there within half a step
    round onto the last code (not clipped); past it the error comes from clamping."""
    quantizer = Quantizer(BitType(8, True))
    quantizer.update_quantization_params(torch.tensor([1.0]), torch.tensor([0]))
    x = torch.tensor(values)
    profiler = QuantProfiler("w")
    profiler.update(x, quantizer(x), *quantizer.clip_range(), quantizer.scale)
    assert profiler.get_results()["statistics"]["clip_fraction"] * len(values) == \
        pytest.approx(expected, abs=1e-9)
    assert int(beyond_half_step(x, torch.tensor(-128.0), torch.tensor(127.0),
                                torch.tensor(1.0)).sum()) == expected


@pytest.mark.parametrize("method", ["Uniform", "Affine"])
@pytest.mark.parametrize("mode,bits,channels", [("channel_wise", 8, 48), ("layer_wise", 4, 1)],
                         ids=["int8-per-channel", "int4-per-tensor"])
def test_memory_counts_packed_codes_scales_and_affine_zero_points(mode, bits, channels, method):
    """A float32 scale per qparam set, plus a bits-wide zero point under Affine only (Uniform's
    zero point is implied, so it is not stored)."""
    cfg = QuantConfig(calibration_mode=mode, bit_type=BitType(bits, True),
                      quantization_method=method)
    layer = calibrated(QuantLinear(make_linear(48, 33), cfg, cfg))
    layer(torch.randn(10, 33))
    memory = layer.get_profiling_results()
    weight, output = memory["weight"]["memory"], memory["output"]["memory"]
    per_set_bits = 32 + (bits if method == "Affine" else 0)
    qparams = math.ceil(channels * per_set_bits / 8)
    packed = math.ceil(48 * 33 * bits / 8)
    assert weight == {"fp32_bytes": 48 * 33 * 4, "quantized_bytes": packed,
                      "qparam_bytes": qparams,
                      "compression_ratio": pytest.approx(48 * 33 * 4 / (packed + qparams)),
                      "bits_per_element": pytest.approx(bits + channels * per_set_bits
                                                        / (48 * 33))}
    out_packed = math.ceil(10 * 48 * bits / 8)
    assert output["qparam_bytes"] == qparams
    assert output["compression_ratio"] == pytest.approx(10 * 48 * 4 / (out_packed + qparams))


def test_kept_fp32_output_is_the_true_reference():
    linear = make_linear()
    layer = calibrated(QuantLinear(linear, QuantConfig(), QuantConfig()))
    x = torch.randn(5, 32)
    layer(x)
    assert layer.last_fp32_output is None  # opt-in only
    layer.keep_fp32_output = True
    layer(x)
    assert torch.equal(layer.last_fp32_output, linear(x).detach())


@pytest.mark.parametrize("module", [
    nn.Embedding(10, 4),
    nn.Conv1d(4, 3, 1),
], ids=["embedding", "conv1d"])
def test_modules_that_are_not_linear_are_refused_by_name(module):
    configs = load_config_from_yaml("configs/attn_config.yaml")
    with pytest.raises(TypeError, match=type(module).__name__):
        QuantLinear(module, configs["output"], configs["weight"])


def test_a_linear_subclass_with_its_own_forward_is_refused():
    class Scaled(nn.Linear):
        def forward(self, x):
            return 2 * super().forward(x)

    class Plain(nn.Linear):  # no forward of its own: a Linear in every way that matters
        pass

    configs = load_config_from_yaml("configs/attn_config.yaml")
    with pytest.raises(TypeError, match="overrides forward"):
        QuantLinear(Scaled(4, 3), configs["output"], configs["weight"])
    layer = QuantLinear(Plain(4, 3), configs["output"], configs["weight"])
    assert layer.weight.shape == (3, 4)


def _calibrated(seed: int, weight_mode: str = "channel_wise") -> QuantLinear:
    configs = load_config_from_yaml("configs/attn_config.yaml")
    weight_config = QuantConfig(calibration_mode=weight_mode)
    generator = torch.Generator().manual_seed(seed)
    linear = nn.Linear(32, 24)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(24, 32, generator=generator) * (seed + 1))
    layer = QuantLinear(linear, configs["output"], weight_config)
    for _ in range(2):
        layer.calibration(torch.randn(16, 32, generator=generator) * (seed + 1))
    layer.compute_output_quant_params()
    layer.mode = "quantized"
    return layer


@pytest.mark.parametrize("target_calibrated", [True, False], ids=["calibrated", "fresh"])
def test_a_state_dict_round_trip_gives_identical_outputs(target_calibrated):
    source = _calibrated(seed=0)
    target = _calibrated(seed=5) if target_calibrated else QuantLinear(
        nn.Linear(32, 24), source.out_config, source.weight_config)
    x = torch.randn(8, 32, generator=torch.Generator().manual_seed(9))
    target.load_state_dict(source.state_dict())
    target.mode = "quantized"
    assert torch.equal(target.dequant_weight, source.dequant_weight)  # rebuilt from the codes
    assert torch.equal(target.output_scaler, source.output_scaler)
    assert torch.equal(target(x), source(x))


def test_loading_qparams_of_another_granularity_is_refused():
    with pytest.raises(RuntimeError, match="size mismatch"):
        _calibrated(seed=1, weight_mode="layer_wise").load_state_dict(_calibrated(0).state_dict())


def test_loading_codes_outside_the_bit_type_is_refused():
    source = _calibrated(seed=0)
    narrow = QuantLinear(nn.Linear(32, 24), source.out_config,
                         QuantConfig(calibration_mode="channel_wise",
                                     bit_type=BitType(4, True)))
    with pytest.raises(ValueError, match="outside this layer's int4 range"):
        narrow.load_state_dict(source.state_dict())


def test_the_seed_self_test_runs_as_a_module():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "quantlib.quant_linear"], capture_output=True,
                          text=True, timeout=300, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.rstrip().endswith("PASSED") and "[FAIL" not in done.stdout
