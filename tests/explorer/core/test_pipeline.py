"""``explorer.core.pipeline``: configs + sample data -> bounded results and figures."""

import dataclasses
import math

import pytest
import torch

from explorer.core import state as S
from explorer.core.blocks import MAX_HEATMAP_SIDE
from explorer.core.figures import figure_payload_bytes
from explorer.core.pipeline import (
    DataSettings,
    build_figures,
    config_key,
    run_pipeline,
)
from explorer.data.sources import make_sample_data
from quantlib.bit_type import BitType
from quantlib.config_loader import load_config_from_yaml, parse_section
from quantlib.quant_config import QuantConfig

TWO_MB = 2 * 1024 * 1024
SMALL = DataSettings(in_features=48, out_features=40, num_batches=3, batch_size=32)


@pytest.fixture(scope="module")
def default_configs():
    return load_config_from_yaml(S.PRESET_DIR / S.DEFAULT_PRESET)


def test_run_pipeline_collects_per_channel_results(default_configs):
    progress = []
    result = run_pipeline(default_configs, make_sample_data(SMALL),
                          lambda f, text: progress.append((f, text)))
    assert set(result.tensors) == {"weight", "output"}
    weight, output = result.tensors["weight"], result.tensors["output"]
    assert weight.clip_lo.shape == weight.clip_hi.shape == (40,)
    assert output.clip_lo.shape == (40,) and output.scale.shape == (40,)
    assert bool((weight.clip_lo < weight.clip_hi).all())
    assert weight.error_map.shape == (40, 48) and output.error_map.shape == (32, 40)
    assert weight.statistics["per_channel_qsnr"].shape == (40,)
    assert weight.levels is None  # 8 bits: no level grid
    fractions = [f for f, _ in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("Calibrating batch 3/3" in text for _, text in progress)


def test_low_bits_keep_the_widest_channels_level_grid(default_configs):
    configs = dict(default_configs)
    configs["weight"] = dataclasses.replace(configs["weight"], bit_type=BitType(4, True))
    weight = run_pipeline(configs, make_sample_data(SMALL)).tensors["weight"]
    assert weight.levels.shape == (16,)
    assert weight.level_channel == int(weight.scale.argmax())


def test_layer_wise_clip_range_is_expanded_to_every_channel():
    config = QuantConfig(calibration_mode="layer_wise")
    result = run_pipeline({"weight": config, "output": config, "activation": config},
                          make_sample_data(SMALL))
    activation = result.tensors["activation"]
    assert activation.clip_lo.shape == (48,) and activation.scale.shape == (1,)
    assert len(set(activation.clip_hi.tolist())) == 1
    assert "activation_error" in build_figures(result)


def test_disabled_profiler_skips_statistics_and_histogram(default_configs):
    configs = dict(default_configs)
    configs["weight"] = dataclasses.replace(configs["weight"], enable_profiler=False)
    result = run_pipeline(configs, make_sample_data(SMALL))
    assert result.tensors["weight"].statistics is None
    figures = build_figures(result)
    assert "weight_histogram" not in figures and "weight_error" in figures


def test_quantized_error_matches_a_direct_computation(default_configs):
    data = make_sample_data(SMALL)
    result = run_pipeline(default_configs, data)
    weight = result.tensors["weight"]
    assert weight.error_map.row_block == weight.error_map.col_block == 1
    scale = weight.scale[:, None]
    dequant = torch.clamp(torch.round(data.weight / scale), -128, 127) * scale
    torch.testing.assert_close(weight.error_map.blocks, (dequant - data.weight).abs(),
                               atol=1e-6, rtol=0)


def test_same_settings_give_the_same_data_and_result(default_configs):
    first = run_pipeline(default_configs, make_sample_data(SMALL)).tensors["output"]
    second = run_pipeline(default_configs, make_sample_data(SMALL)).tensors["output"]
    first, second = first.statistics["qsnr"], second.statistics["qsnr"]
    assert first == second and math.isfinite(first)


def test_config_key_ignores_comments_and_layout():
    a = parse_section("# note\nbit_type: {bits: 4}\nobserver_type: KLObserver\n", "weight")
    b = parse_section("observer_type: KLObserver\nbit_type:\n  bits: 4\n", "weight")
    out = QuantConfig()
    assert config_key({"weight": a, "output": out}) == config_key({"weight": b, "output": out})
    hash(config_key({"weight": a, "output": out, "activation": None}))


@pytest.mark.slow
def test_figures_stay_under_two_megabytes_for_a_4096_square_layer(default_configs):
    settings = DataSettings(in_features=4096, out_features=4096, num_batches=2, batch_size=256)
    result = run_pipeline(default_configs, make_sample_data(settings))
    assert result.tensors["weight"].error_map.blocks.shape == (MAX_HEATMAP_SIDE,) * 2
    figures = build_figures(result)
    sizes = {name: figure_payload_bytes(fig) for name, fig in figures.items()}
    assert all(size <= TWO_MB for size in sizes.values()), sizes


# --- reuse: calibration and figures --------------------------------------------------------


ACT = parse_section("calibration_mode: layer_wise\nbit_type: {bits: 6, signed: true, name: int6}\n"
                    "observer_type: PercentileObserver\nquantization_method: Affine\n",
                    "activation")


@pytest.mark.parametrize("with_activation", [False, True], ids=["no-activation", "activation"])
def test_a_weight_edit_reuses_the_calibration_and_gives_identical_results(
        default_configs, monkeypatch, with_activation):
    from quantlib.quant_linear import QuantLinear

    base = {**default_configs, "activation": ACT if with_activation else None}
    edited = {**base, "weight": dataclasses.replace(base["weight"], bit_type=BitType(4, True))}
    calls = []
    real = QuantLinear.calibration
    monkeypatch.setattr(QuantLinear, "calibration",
                        lambda self, x: calls.append(1) or real(self, x))
    data = make_sample_data(SMALL)
    run_pipeline(base, data)
    assert len(calls) == SMALL.num_batches
    reused = run_pipeline(edited, data)
    assert len(calls) == SMALL.num_batches  # the weight edit did not calibrate again
    fresh = run_pipeline(edited, make_sample_data(SMALL))  # new data: calibrates from scratch
    assert len(calls) == 2 * SMALL.num_batches
    for name, tensor in fresh.tensors.items():
        other = reused.tensors[name]
        assert torch.equal(tensor.scale, other.scale) and torch.equal(tensor.zero_point,
                                                                      other.zero_point)
        assert tensor.statistics["qsnr"] == other.statistics["qsnr"], name
        assert torch.equal(tensor.error_map.blocks, other.error_map.blocks), name


def test_an_output_edit_calibrates_again(default_configs, monkeypatch):
    from quantlib.quant_linear import QuantLinear

    calls = []
    real = QuantLinear.calibration
    monkeypatch.setattr(QuantLinear, "calibration",
                        lambda self, x: calls.append(1) or real(self, x))
    data = make_sample_data(SMALL)
    first = run_pipeline(default_configs, data)
    edited = {**default_configs, "output": dataclasses.replace(
        default_configs["output"], percentile_alpha=0.99)}
    second = run_pipeline(edited, data)
    assert len(calls) == 2 * SMALL.num_batches
    assert not torch.equal(first.tensors["output"].scale, second.tensors["output"].scale)


def test_figures_are_built_only_when_asked_for(default_configs, monkeypatch):
    from explorer.core import pipeline

    built = []
    real = pipeline.make_block_heatmap
    monkeypatch.setattr(pipeline, "make_block_heatmap",
                        lambda *a, **k: built.append(a[3]) or real(*a, **k))
    figures = build_figures(run_pipeline(default_configs, make_sample_data(SMALL)))
    assert {"weight_error", "output_error", "weight_histogram", "timing"} <= set(figures)
    assert built == []  # listing the keys builds nothing
    first = figures["weight_error"]
    assert figures["weight_error"] is first and len(built) == 1  # built once, then kept
