"""The compare view's logic: sweeps equal direct builds, marks are the real clip ranges, curve
parts add up, the diff lists exactly what changed, and the figures name every config."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from explorer.compare import cache as compare_cache
from explorer.compare import clip as CC
from explorer.compare import figures as CF
from explorer.compare import runs as C
from explorer.compare.panel import best_rows, lost_table, metrics_table
from explorer.core.pipeline import DataSettings
from explorer.data.sources import make_sample_data
from quantlib import analysis as QA
from quantlib.bit_type import BitType
from quantlib.config_loader import ConfigError, load_config_from_string
from quantlib.quant_config import OBSERVER_TYPES, QuantConfig
from quantlib.quant_linear import QuantLinear
from quantlib.quantizers import fake_quantize

SMALL = DataSettings(in_features=64, out_features=48, seed=1, num_batches=3, batch_size=32)
DOCUMENT = """\
# top comment
weight:       # weight comment
  calibration_mode: channel_wise
  bit_type:
    bits: 8
    signed: true
    name: int8
  observer_type: MinmaxObserver   # keep me
  quantization_method: Uniform
outputs:
  calibration_mode: layer_wise
  bit_type: {bits: 6, signed: false, name: uint6}
  observer_type: PercentileObserver
  quantization_method: Affine
  percentile_alpha: 0.999
activation:
  calibration_mode: layer_wise
  bit_type: {bits: 8, signed: true}
  observer_type: EmaMinmaxObserver
"""


@pytest.fixture(scope="module")
def data():
    return make_sample_data(SMALL)


def layout(kind: str, observer: str) -> dict:
    """Two config shapes: per-channel symmetric (the seed's) and per-tensor asymmetric."""
    if kind == "channel_wise":  # KL: the default 2048 bins, sparse for 64 values per row
        weight = QuantConfig("channel_wise", BitType(8, True), observer, "Uniform")
        output = QuantConfig("channel_wise", BitType(8, False), observer, "Uniform")
    else:
        weight = QuantConfig("layer_wise", BitType(8, True), observer, "Affine", kl_bins=256)
        output = QuantConfig("layer_wise", BitType(8, True), observer, "Affine", kl_bins=256)
    return {"weight": weight, "output": output, "activation": None}


def direct_build(configs: dict, data, bits: int | None = None) -> QuantLinear:
    """A QuantLinear built from scratch (optionally with weight and output at ``bits``),
    calibrated on the data's batches and run once on the eval batch."""
    if bits is not None:  # the input activation keeps its own width
        configs = {k: c if c is None or k == "activation" else dataclasses.replace(
            c, bit_type=BitType(bits, c.bit_type.signed)) for k, c in configs.items()}
    linear = nn.Linear(SMALL.in_features, SMALL.out_features)
    with torch.no_grad():
        linear.weight.copy_(data.weight)
        linear.bias.copy_(data.bias)
    layer = QuantLinear(linear, configs["output"], configs["weight"], "direct",
                        act_config=configs.get("activation"))
    for batch in data.calibration:
        layer.calibration(batch)
    layer.compute_output_quant_params()
    layer.mode = "quantized"
    layer(data.eval_batch)
    return layer


# --- sweep ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["channel_wise", "layer_wise"])
@pytest.mark.parametrize("observer", OBSERVER_TYPES)
def test_sweep_qsnr_equals_a_direct_build_at_each_width(data, observer, kind):
    configs = layout(kind, observer)
    bits = (*C.SWEEP_BITS, C.WIDE_BITS)
    run = C.run_config(configs, data, bits)
    assert run.sweep.bits == bits
    for i, b in enumerate(bits):
        stats = direct_build(configs, data, b).get_profiling_results()
        weight, output = stats["weight"]["statistics"], stats["output"]["statistics"]
        assert run.sweep.weight_qsnr[i] == pytest.approx(weight["qsnr"], abs=0.05), b
        assert run.sweep.output_qsnr[i] == pytest.approx(output["qsnr"], abs=0.05), b
    # the sweep falls as bits fall, and the config's own width matches its own metrics
    assert run.sweep.weight_qsnr[0] < run.sweep.weight_qsnr[-2] - 20
    own = bits.index(8)
    assert run.sweep.weight_qsnr[own] == pytest.approx(run.tensors["weight"].qsnr, abs=1e-4)
    assert run.sweep.output_qsnr[own] == pytest.approx(run.tensors["output"].qsnr, abs=1e-4)


def test_sweep_keeps_a_quantized_input_activation_at_its_width(data):
    configs = layout("layer_wise", "MinmaxObserver")
    configs["activation"] = QuantConfig("layer_wise", BitType(6, True), "MinmaxObserver")
    run = C.run_config(configs, data, (4, 8))
    for i, b in enumerate((4, 8)):
        direct = direct_build(configs, data, b).get_profiling_results()
        assert run.sweep.output_qsnr[i] == pytest.approx(
            direct["output"]["statistics"]["qsnr"], abs=0.05)


def test_run_metrics_equal_the_layers_profiler_and_db_lost_reads_the_ideal_line(data):
    configs = layout("channel_wise", "PercentileObserver")
    run = C.run_config(configs, data)
    direct = direct_build(configs, data).get_profiling_results()
    for name in C.TENSORS:
        stats = direct[name]["statistics"]
        tensor = run.tensors[name]
        assert tensor.qsnr == pytest.approx(stats["qsnr"], abs=1e-9)
        assert tensor.mse == pytest.approx(stats["mse"], rel=1e-9)
        assert tensor.clip_fraction == stats["clip_fraction"]
        torch.testing.assert_close(tensor.per_channel_qsnr, stats["per_channel_qsnr"])
    assert C.ideal_qsnr(8) == pytest.approx(48.13, abs=0.01)  # 20·log10(255)
    assert C.ideal_qsnr(9) - C.ideal_qsnr(8) == pytest.approx(6.03, abs=0.01)
    lost = C.db_lost(run)
    assert lost["weight"] == pytest.approx(48.1308 - run.tensors["weight"].qsnr, abs=1e-3)
    assert run.observer_ms > 0 and run.calibration_ms > 0 and run.sweep_ms > 0


def test_qparams_by_bits_reuses_the_known_width_and_the_range_once(data):
    layer = direct_build(layout("layer_wise", "PercentileObserver"), data)
    calls = []
    original = layer.weight_observer.compute_range

    def counting():
        calls.append(1)
        return original()

    layer.weight_observer.compute_range = counting
    known = {8: (layer.weight_scaler, layer.weight_zero)}
    params = QA.qparams_by_bits(layer.weight_observer, [BitType(b, True) for b in (2, 4, 8)],
                               known)
    assert len(calls) == 1  # one quantile search for three widths
    assert params[2][0] is layer.weight_scaler
    expected = layer.weight_observer.with_bit_type(BitType(4, True)).get_quantization_params()
    torch.testing.assert_close(params[1][0], expected[0])


# --- clip marks and curves --------------------------------------------------------------------


@pytest.mark.parametrize("observer", ["MinmaxObserver", "PercentileObserver", "OmseObserver",
                                      "KLObserver"])
def test_marked_threshold_is_the_configs_real_clip_range(data, observer):
    configs = {"weight": QuantConfig("layer_wise", BitType(4, True), observer, kl_bins=256),
               "output": QuantConfig("layer_wise", BitType(4, False), observer, kl_bins=256),
               "activation": None}
    run = C.run_config(configs, data, (4,))
    direct = direct_build(configs, data)
    outputs = C.calibration_outputs(data)
    for name, values, axis, observer_obj, quantizer in (
            ("weight", data.weight, 0, direct.weight_observer, direct.weight_quantizer),
            ("output", outputs, -1, direct.output_observer, direct.output_quantizer)):
        view = CC.clip_view(values, {observer: run.tensors[name]}, axis)
        (mark,) = view.marks
        lo, hi = observer_obj.compute_range()
        assert mark.threshold == pytest.approx(max(-min(float(lo), 0.0), max(float(hi), 0.0)),
                                               rel=1e-6)
        clip_lo, clip_hi = quantizer.clip_range()
        assert mark.clip_lo == pytest.approx(float(clip_lo), rel=1e-6)
        assert mark.clip_hi == pytest.approx(float(clip_hi), rel=1e-6)
        # a symmetric range [-t, t] is exactly the config's scale: the mark lies on the curve
        bt = configs[name].bit_type
        assert mark.threshold / ((bt.qmax - bt.qmin) / 2) == pytest.approx(
            float(quantizer.scale), rel=1e-6)
        assert mark.on_curve
        deq = fake_quantize(values, quantizer.scale, quantizer.zero_point, bt)
        assert mark.mse == pytest.approx(float((deq - values).double().pow(2).mean()), rel=1e-6)


def test_channel_marks_are_each_channels_range_and_the_whole_tensor_mark_is_the_median(data):
    configs = layout("channel_wise", "OmseObserver")
    run = C.run_config(configs, data, (8,))
    direct = direct_build(configs, data)
    outputs = C.calibration_outputs(data)
    lo, hi = direct.output_quantizer.clip_range()
    range_lo, range_hi = direct.output_observer.compute_range()
    thresholds = torch.maximum(-range_lo.clamp(max=0), range_hi.clamp(min=0))
    for channel in (0, 17, SMALL.out_features - 1):
        view = CC.clip_view(outputs, {"OMSE": run.tensors["output"]}, -1, channel, "ch")
        (mark,) = view.marks
        assert mark.threshold == pytest.approx(float(thresholds[channel]), rel=1e-6)
        assert (mark.clip_lo, mark.clip_hi) == pytest.approx(
            (float(lo[channel]), float(hi[channel])), rel=1e-6)
        assert mark.on_curve
    whole = CC.clip_view(outputs, {"OMSE": run.tensors["output"]}, -1)
    (mark,) = whole.marks
    assert not mark.on_curve
    assert mark.threshold == pytest.approx(float(thresholds.median()), rel=1e-6) or \
        mark.threshold == pytest.approx(float(thresholds.sort().values[23:25].mean()), rel=1e-6)


@pytest.mark.parametrize("rows", [40, 3000], ids=["exact", "histogram-summary"])
def test_clipping_plus_rounding_is_the_total_mse(data, rows):
    gen = torch.Generator().manual_seed(5)
    values = torch.randn(rows, SMALL.out_features, generator=gen) ** 3  # heavy tails
    runs = {}
    for name, observer in C.CLASSIC:
        configs = {"weight": QuantConfig("layer_wise", BitType(4, True), observer, kl_bins=256),
                   "output": QuantConfig("layer_wise", BitType(4, True), observer, kl_bins=256,
                                         quantization_method="Affine" if name == "KL"
                                         else "Uniform"),
                   "activation": None}
        runs[name] = C.run_config(configs, data, (4,)).tensors["output"]
    view = CC.clip_view(values, runs, -1)
    assert len(view.curves) == 2  # int4 Uniform and int4 Affine
    for curve in view.curves:
        assert curve.thresholds.shape == (CC.CURVE_POINTS,)
        torch.testing.assert_close(curve.clipping + curve.rounding, curve.total, rtol=1e-12,
                                   atol=0)
        # tiny t: nearly all error is clipping; t = max|x|: nothing is clipped
        assert float(curve.clipping[0]) > 10 * float(curve.rounding[0]) > 0
        assert float(curve.clipping[-1]) == 0 and float(curve.rounding[-1]) > 0
    for mark in view.marks:
        assert mark.clipping_mse + mark.rounding_mse == pytest.approx(mark.mse, rel=1e-12)
    assert int(view.counts.sum()) == values.numel()


# --- configs: parse, classic set, diff --------------------------------------------------------


def test_classic_set_changes_only_the_weight_and_output_observers():
    base = load_config_from_string(DOCUMENT)
    entries = C.classic_set(DOCUMENT)
    assert [name for name, _ in entries] == ["MinMax", "Percentile", "OMSE", "KL"]
    for (name, text), (_, observer) in zip(entries, C.CLASSIC):
        configs = C.parse_entry(name, text).configs
        assert configs["weight"] == dataclasses.replace(base["weight"], observer_type=observer)
        assert configs["output"] == dataclasses.replace(base["output"], observer_type=observer)
        assert configs["activation"] == base["activation"]
        assert "# keep me" in text and "# weight comment" in text
    assert C.config_diff({n: C.parse_entry(n, t).configs for n, t in entries}) == [
        ("weight.observer_type", ("MinmaxObserver", "PercentileObserver", "OmseObserver",
                                  "KLObserver")),
        ("outputs.observer_type", ("MinmaxObserver", "PercentileObserver", "OmseObserver",
                                   "KLObserver")),
    ]


def test_classic_set_of_an_invalid_document_raises_the_loaders_error():
    with pytest.raises(ConfigError, match="observer_type"):
        C.classic_set(DOCUMENT.replace("MinmaxObserver", "Nope"))


def test_classic_set_rebuilds_flow_style_documents():
    flow = "{weight: {observer_type: MinmaxObserver}, outputs: {bit_type: {bits: 4}}}"
    for name, text in C.classic_set(flow):
        configs = C.parse_entry(name, text).configs
        assert configs["output"].bit_type.bits == 4
        assert configs["weight"].observer_type == configs["output"].observer_type


def test_diff_lists_exactly_the_changed_fields():
    a = load_config_from_string(DOCUMENT)
    assert C.config_diff({"A": a, "B": a}) == []
    commented = load_config_from_string(DOCUMENT.replace("# keep me", "# other").replace(
        "observer_type: MinmaxObserver", "observer_type:   MinmaxObserver"))
    assert C.config_diff({"A": a, "B": commented}) == []
    b = load_config_from_string(DOCUMENT.replace("bits: 8\n    signed: true\n    name: int8",
                                                 "bits: 4\n    signed: true\n    name: int4")
                                .replace("percentile_alpha: 0.999", "percentile_alpha: 0.99"))
    assert C.config_diff({"A": a, "B": b}) == [
        ("weight.bit_type.bits", (8, 4)),
        ("weight.bit_type.name", ("int8", "int4")),
        ("outputs.percentile_alpha", (0.999, 0.99)),
    ]
    no_activation = {**a, "activation": None}
    rows = dict(C.config_diff({"A": a, "B": no_activation}))
    assert rows["activation.observer_type"] == ("EmaMinmaxObserver", None)
    assert "activation" not in rows and all(p.startswith("activation.") for p in rows)
    # three configs: a field that differs in any of them is listed, with every value
    c = {**a, "weight": dataclasses.replace(a["weight"], kl_bins=512)}
    assert C.config_diff({"A": a, "B": a, "C": c}) == [("weight.kl_bins", (2048, 2048, 512))]


def test_parse_entry_keeps_the_text_and_reports_field_line_and_choices():
    bad = DOCUMENT.replace("observer_type: PercentileObserver", "observer_type: Percentile")
    entry = C.parse_entry("B", bad)
    assert entry.configs is None and entry.text == bad
    assert entry.error.path == "outputs.observer_type"
    assert entry.error.line == 13
    assert "PercentileObserver" in entry.error.reason  # the valid choices are listed
    assert C.parse_entry("A", DOCUMENT).error is None


# --- tables and figures -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def classic_runs(data):
    runs = {}
    for name, text in C.classic_set(DOCUMENT):
        runs[name] = C.run_config(C.parse_entry(name, text).configs, data)
    return runs


def test_metrics_table_has_a_row_per_config_and_marks_the_best(classic_runs):
    table = metrics_table(classic_runs)
    assert list(table.index) == ["MinMax", "Percentile", "OMSE", "KL"]
    best = best_rows(table)
    qsnr = {n: r.tensors["output"].qsnr for n, r in classic_runs.items()}
    assert best["Output QSNR (dB)"] == [max(qsnr, key=qsnr.get)]
    mse = {n: r.tensors["weight"].mse for n, r in classic_runs.items()}
    assert best["Weight MSE"] == [min(mse, key=mse.get)]
    assert "MinMax" in best["Weight clipped (%)"]  # MinMax never clips
    assert float(table.loc["MinMax", "Weight clipped (%)"]) == 0.0
    lost = lost_table(classic_runs)
    assert list(lost["Weight bits"]) == [8] * 4 and list(lost["Output bits"]) == [6] * 4


def test_figures_draw_every_config_in_its_own_colour(classic_runs, data):
    names = list(classic_runs)
    colors = CF.config_colors(names)
    assert len(set(colors.values())) == 4
    sweep = CF.make_sweep_figure({n: r.sweep for n, r in classic_runs.items()},
                                 {n: {"weight": 8, "output": 6} for n in names}, colors)
    lines = [t for t in sweep.data if t.name in names]
    assert len(lines) == 8  # weight and output per config
    stars = [t for t in sweep.data if t.name.endswith("(its width)")]
    assert len(stars) == 8 and all(t.marker.symbol == "star" for t in stars)
    ideal = [t for t in sweep.data if t.name.startswith("ideal")]
    assert list(ideal[0].y) == pytest.approx([C.ideal_qsnr(b) for b in C.SWEEP_BITS])
    channels = CF.make_channels_figure(
        {n: {t: r.tensors[t].per_channel_qsnr for t in C.TENSORS}
         for n, r in classic_runs.items()}, colors)
    assert sorted({t.name for t in channels.data}) == sorted(names)
    view = CC.clip_view(data.weight, {n: r.tensors["weight"] for n, r in classic_runs.items()}, 0)
    histogram = CF.make_clip_histogram_figure(view, colors, "Weight")
    assert [t.name for t in histogram.data[1:]] == names
    assert [t.line.color for t in histogram.data[1:]] == [colors[n] for n in names]
    curve = CF.make_clip_curve_figure(view, colors, "Weight")
    markers = [t for t in curve.data if t.name in names]
    assert [float(t.x[0]) for t in markers] == pytest.approx([m.threshold for m in view.marks])


def test_figures_stay_bounded_and_show_lossless_as_capped(classic_runs):
    names = list(classic_runs)
    many = torch.linspace(10, 40, 20_000, dtype=torch.float64)
    many[5] = math.inf
    fig = CF.make_channels_figure({"A": {"weight": many, "output": many}}, {"A": "#000"})
    assert all(len(t.y) <= 4096 for t in fig.data)
    sweep = C.Sweep((2, 16), (10.0, math.inf), (8.0, 60.0))
    fig = CF.make_sweep_figure({"A": sweep}, {"A": {"weight": 16, "output": 16}}, {"A": "#000"})
    weight_line = next(t for t in fig.data if t.name == "A")
    assert list(weight_line.y) == [10.0, 70.0]  # +inf drawn at the cap (60 + 10)
    assert "+inf (lossless)" in weight_line.customdata[1][0]
    assert names  # the module fixture ran


# --- caches -----------------------------------------------------------------------------------


def test_compare_caches_reuse_runs_layers_and_sweeps(monkeypatch):
    from explorer.core import cache

    cache.clear_all()
    settings = DataSettings(in_features=24, out_features=16, num_batches=2, batch_size=16)
    calls = []
    real = compare_cache.calibrate_config

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(compare_cache, "calibrate_config", counting)
    configs = C.parse_entry("A", DOCUMENT).configs
    run = compare_cache.compare_run(configs, settings)
    # a comment-only edit parses to the same configs: a cache hit, no recalibration
    same = C.parse_entry("B", DOCUMENT.replace("# keep me", "# edited")).configs
    assert compare_cache.compare_run(same, settings) is run
    assert compare_cache.lookup_compare(same, settings) is run
    assert compare_cache.lookup_compare(configs, settings, C.SWEEP_BITS) is None
    sweep = compare_cache.compare_sweep(configs, settings, C.SWEEP_BITS)
    assert len(calls) == 1  # the sweep reused the calibrated layer
    assert compare_cache.compare_sweep(same, settings, C.SWEEP_BITS) is sweep
    # the layer cache is bounded: after MAX_CONFIGS other configs, a new sweep recalibrates
    for bits in (3, 4, 5, 6):
        other = {**configs, "weight": dataclasses.replace(configs["weight"],
                                                          bit_type=BitType(bits, True))}
        compare_cache.compare_run(other, settings)
    assert len(compare_cache.compare_layers()) == C.MAX_CONFIGS
    compare_cache.compare_sweep(configs, settings, (2, 8))
    assert len(calls) == 6
    view = compare_cache.compare_clip_view("output", {"A": run}, settings, None, "whole tensor")
    assert compare_cache.compare_clip_view("output", {"A": run}, settings, None, "x") is view
    again = compare_cache.compare_clip_view("output", {"A": run}, settings, 3, "channel 3")
    assert again is not view
    cache.clear_all()
