"""The Teach tab's data functions show the layer's own numbers; the share/export helpers
round-trip. Layers are small so this stays fast."""

import math
import re

import pytest
import torch

from explorer.core import state as S
from explorer.core.figures import MAX_CHANNEL_POINTS, MAX_HISTOGRAM_BINS
from explorer.core.pipeline import DataSettings, build_layer, run_pipeline
from explorer.data.sources import make_sample_data
from explorer.share.export import dequantize_exported, load_exported
from explorer.share.panel import apply_link, link_url, safetensors_bytes, shared_state_of
from explorer.teach import analysis as T
from explorer.teach import state as TS
from explorer.teach.figures import (
    make_clickable_heatmap,
    make_code_histogram,
    make_decomposition_figure,
    make_rmse_gauge,
)
from explorer.teach.formats import latex_number
from explorer.teach.lessons import formula_lines
from explorer.teach.panel import on_heatmap_select
from quantlib.bit_type import BitType
from quantlib.config_loader import load_config_from_string
from quantlib.quantizers.functional import calculate_qparams

SETTINGS = DataSettings(in_features=40, out_features=24, seed=1, num_batches=2, batch_size=16,
                        weight_source="Outlier channels", input_source="Laplace")


def doc(weight: str, outputs: str, activation: str | None = None) -> str:
    def indent(body):
        return "".join(f"  {line}\n" for line in body.strip().splitlines())
    text = f"weight:\n{indent(weight)}outputs:\n{indent(outputs)}"
    return text + (f"activation:\n{indent(activation)}" if activation else "")


CASES = {
    "per-channel-int8": doc("calibration_mode: channel_wise\nbit_type: {bits: 8, signed: true}",
                            "bit_type: {bits: 8, signed: false}\nquantization_method: Affine"),
    "per-tensor-int4-affine": doc(
        "bit_type: {bits: 4, signed: true}\nquantization_method: Affine",
        "calibration_mode: channel_wise\nbit_type: {bits: 6, signed: true}\n"
        "observer_type: PercentileObserver\npercentile_alpha: 0.99"),
    "uint3-omse-with-activation": doc(
        "calibration_mode: channel_wise\nbit_type: {bits: 3, signed: false}\n"
        "observer_type: OmseObserver",
        "bit_type: {bits: 8, signed: true}\nobserver_type: KLObserver\nkl_bins: 256",
        "bit_type: {bits: 5, signed: false}\nquantization_method: Affine"),
}


@pytest.fixture(scope="module", params=list(CASES), ids=list(CASES))
def case(request):
    configs = load_config_from_string(CASES[request.param])
    data = make_sample_data(SETTINGS)
    return configs, data, T.build_analysis(configs, data)


# --- explain ------------------------------------------------------------------------------


def test_formula_numbers_are_the_layers_qparams(case):
    configs, _, analysis = case
    layer = analysis.layer
    qparams = {"weight": (layer.weight_scaler, layer.weight_zero, layer.weight_observer),
               "output": (layer.output_scaler, layer.output_zero, layer.output_observer)}
    if layer.act_config is not None:
        qparams["activation"] = (layer.input_scaler, layer.input_zero, layer.input_observer)
    assert set(analysis.tensors) == set(qparams)
    for name, (scale, zero, observer) in qparams.items():
        bt = analysis.tensors[name].config.bit_type
        lo, hi = observer.compute_range()
        for channel in {0, scale.numel() // 2, scale.numel() - 1}:
            out = T.explain(analysis, name, channel)
            v = out["values"]
            assert v["scale"] == float(scale[channel]) and v["zero_point"] == int(zero[channel])
            assert (v["qmin"], v["qmax"]) == (bt.qmin, bt.qmax)
            assert v["range_min"] == float(lo.reshape(-1)[channel])
            assert v["range_max"] == float(hi.reshape(-1)[channel])
            clip_lo, clip_hi = (t.reshape(-1)[channel] for t in
                                _quantizer(layer, name).clip_range())
            assert v["clip_lo"] == pytest.approx(float(clip_lo), rel=1e-6)
            assert v["clip_hi"] == pytest.approx(float(clip_hi), rel=1e-6)
            # The range shown gives the scale shown (the formula really is the rule used).
            s, z = calculate_qparams(torch.tensor([v["range_min"]]),
                                     torch.tensor([v["range_max"]]), bt,
                                     analysis.tensors[name].config.is_symmetric)
            assert float(s) == v["scale"] and int(z) == v["zero_point"]
            assert any(f"{v['scale']:.6g}" in line for line in out["latex"])
            assert out["note"] and out["observer"] == configs[name].observer_type
    # A channel past the end shows the last one instead of failing.
    weight_channels = analysis.tensors["weight"].num_channels
    assert T.explain(analysis, "weight", 10**6)["channel"] == weight_channels - 1


def _quantizer(layer, name):
    return {"weight": layer.weight_quantizer, "output": layer.output_quantizer,
            "activation": layer.input_quantizer}[name]


@pytest.mark.parametrize("method", ["Uniform", "Affine"])
@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_formula_latex_keeps_math_out_of_text_mode(method, signed):
    """KaTeX shows ``\\text{2^{b-1}}`` as a red error; math must sit outside \\text{}."""
    from quantlib.quant_config import QuantConfig

    cfg = QuantConfig(bit_type=BitType(8, signed), quantization_method=method)
    lines = formula_lines(cfg, torch.tensor([0.1]), torch.tensor([128 if not signed else 0]),
                          torch.tensor([-1.0]), torch.tensor([2.0]))["latex"]
    for line in lines:
        for body in re.findall(r"\\text\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}", line):
            assert not re.search(r"[\^_\\]", body), (line, body)


# --- follow one value ---------------------------------------------------------------------


def test_one_value_chain_reproduces_the_layers_dequantized_weight_exactly(case):
    _, _, analysis = case
    layer = analysis.layer
    rows, cols = layer.weight.shape
    error = T.weight_error(analysis)
    worst = divmod(int(error.argmax()), cols)
    extreme = divmod(int(layer.weight.abs().argmax()), cols)  # often clamped
    picks = [(0, 0), (rows - 1, cols - 1), worst, extreme] + [
        (int(r), int(c)) for r, c in zip(torch.randint(rows, (20,)), torch.randint(cols, (20,)))]
    for row, col in picks:
        chain = T.follow_weight(analysis, row, col)
        assert chain["matches"], chain
        assert chain["dequantized"] == float(layer.dequant_weight[row, col])
        assert chain["code"] == int(layer.quant_weight[row, col])
        assert chain["x"] == float(layer.weight[row, col])
        assert chain["error"] == pytest.approx(chain["dequantized"] - chain["x"], abs=1e-12)
        per_channel = layer.weight_scaler.numel() > 1
        assert chain["channel"] == (row if per_channel else 0)
    with pytest.raises(IndexError, match="outside"):
        T.follow_weight(analysis, rows, 0)


def test_heatmap_cell_maps_to_first_or_worst_weight_of_its_block():
    error = torch.zeros(10, 7)
    error[5, 6] = 3.0  # in the block rows 4..7, cols 4..6 (partial)
    error[1, 1] = 9.0  # another block
    assert T.cell_to_weight(error, 4, 4, 4, 4, "first") == (4, 4)
    assert T.cell_to_weight(error, 4, 4, 4, 4, "max") == (5, 6)
    assert T.cell_to_weight(error, 8, 4, 4, 4, "max") == (8, 4)  # all-zero partial block
    assert T.cell_to_weight(error, 99, -3, 4, 4, "first") == (9, 0)  # clamped into the matrix
    with pytest.raises(ValueError, match="first, max"):
        T.cell_to_weight(error, 0, 0, 4, 4, "worst")


@pytest.mark.parametrize(("selection", "expected"), [
    ({"selection": {"points": [{"x": 12, "y": 36, "curve_number": 0}]}}, (36, 12)),
    ({"selection": {"points": [{"x": 1, "y": 1, "curve_number": 2},
                               {"x": 24.0, "y": 48.0, "curve_number": 0}]}}, (48, 24)),
    ({"selection": {"points": [{"x": 3, "y": 4}]}}, (4, 3)),
    ({"selection": {"points": []}}, None),
    ({"selection": {"points": [{"x": "a", "y": 1}]}}, None),
    ({}, None), (None, None), ("junk", None),
], ids=["cell", "skips-other-traces", "no-curve", "empty", "bad-x", "no-selection", "none",
        "junk"])
def test_selection_points_are_read_safely(selection, expected):
    assert T.select_point(selection) == expected


def test_heatmap_click_moves_the_row_and_column_inputs():
    error = torch.zeros(64, 64)
    error[13, 22] = 1.0
    state = {TS.TEACH_HEATMAP: {"selection": {"points": [{"x": 16, "y": 8}]}},
             TS.TEACH_PICK: "max"}
    on_heatmap_select(state, error, 8, 8)
    assert (state[TS.TEACH_ROW], state[TS.TEACH_COL]) == (13, 22)
    assert "largest error" in state[TS.TEACH_PICK_NOTE] and "[13, 22]" in state[TS.TEACH_PICK_NOTE]
    state[TS.TEACH_PICK] = "first"
    on_heatmap_select(state, error, 8, 8)
    assert (state[TS.TEACH_ROW], state[TS.TEACH_COL]) == (8, 16)
    state[TS.TEACH_HEATMAP] = {"selection": {"points": []}}  # a deselect changes nothing
    on_heatmap_select(state, error, 8, 8)
    assert (state[TS.TEACH_ROW], state[TS.TEACH_COL]) == (8, 16)


def test_clickable_heatmap_has_one_marker_per_cell_at_the_cells_first_index(case):
    _, _, analysis = case
    blocks, rb, cb = T.weight_error_blocks(analysis)
    fig = make_clickable_heatmap(blocks, rb, cb, tuple(analysis.layer.weight.shape), (3, 5),
                                 "t", "row", "col")
    cells = fig.data[0]
    assert cells.type == "scatter" and len(cells.x) == blocks.numel() <= T.CLICK_GRID_SIDE ** 2
    assert set(cells.x) == set(range(0, blocks.shape[1] * cb, cb))
    assert set(cells.y) == set(range(0, blocks.shape[0] * rb, rb))
    assert fig.data[1].type == "heatmap" and fig.layout.clickmode == "event+select"
    assert (fig.data[2].x[0], fig.data[2].y[0]) == (5, 3)


# --- decomposition and codes --------------------------------------------------------------


def test_clipping_plus_rounding_is_the_total_mse(case):
    configs, data, analysis = case
    result = run_pipeline(configs, data)
    for name in analysis.tensors:
        d = T.decompose(analysis, name)
        assert d["clipping_mse"] + d["rounding_mse"] == pytest.approx(d["total_mse"], rel=1e-12)
        per = d["per_channel"]
        assert torch.allclose(per["clipping_mse"] + per["rounding_mse"], per["total_mse"],
                              rtol=1e-12, atol=0)
        assert per["total_mse"].numel() == analysis.tensors[name].num_channels
        assert d["theoretical_rounding_mse"] == pytest.approx(
            float((d["scale"].double() ** 2 / 12).mean()))
        assert d["rounding_only"] == pytest.approx(0.2887, abs=1e-4)
    # The weight's total is the MSE the results tab shows for it.
    stats = result.tensors["weight"].statistics
    assert T.decompose(analysis, "weight")["total_mse"] == pytest.approx(stats["mse"], rel=1e-6)


def test_integer_codes_count_every_value(case):
    _, _, analysis = case
    for name, view in analysis.tensors.items():
        stats = T.integer_codes(analysis, name)
        bits = view.config.bit_type.bits
        assert stats["counts"].numel() == 2 ** bits
        assert int(stats["counts"].sum()) == view.values.numel()
        assert stats["codes_used"] == int((stats["counts"] > 0).sum())
        assert stats["used_fraction"] == pytest.approx(stats["codes_used"] / 2 ** bits)
        assert 0 < stats["effective_bits"] <= bits + 1e-9
    assert torch.equal(analysis.tensors["weight"].codes, analysis.layer.quant_weight)


def test_teach_figures_stay_bounded():
    channels = 3 * MAX_CHANNEL_POINTS
    per = {"clipping_mse": torch.rand(channels).double(),
           "rounding_mse": torch.rand(channels).double()}
    fig = make_decomposition_figure(per, torch.rand(channels), "t")
    assert all(len(trace.x) <= MAX_CHANNEL_POINTS for trace in fig.data)
    bt = BitType(16, True)
    stats = {"codes": torch.arange(bt.qmin, bt.qmax + 1),
             "counts": torch.ones(2 ** 16, dtype=torch.int64)}
    hist = make_code_histogram(stats, "codes")
    assert len(hist.data[0].x) <= MAX_HISTOGRAM_BINS
    assert float(sum(hist.data[0].y)) == 2 ** 16  # bars are summed, nothing is dropped
    gauge = make_rmse_gauge(0.31, 1 / math.sqrt(12), "RMSE / scale")
    assert gauge.data[0].value == pytest.approx(0.31)
    assert make_rmse_gauge(math.nan, 0.29, "x").data[0].value == 0.0


def test_latex_number_writes_exponents_for_katex():
    assert latex_number(0.5) == "0.5"
    assert latex_number(8.75e-05, 3) == r"8.75 \times 10^{-5}"


# --- share and export helpers -------------------------------------------------------------


def _session(**data) -> dict:
    state: dict = {}
    S.init_state(state)
    for name, value in data.items():
        state[S.data_key(name)] = value
    return state


def test_link_round_trips_the_session_state():
    state = _session(in_features=40, seed=9)
    state[S.store_key("weight")] = "# mine\nbit_type: {bits: 5, signed: true}\n"
    state[S.ACT_ENABLED] = True
    params = {"s": _token(state)}
    fresh = _session()
    assert apply_link(fresh, params)[0] == "success"
    for key in (S.store_key("weight"), S.store_key("outputs"), S.store_key("activation"),
                S.ACT_ENABLED, S.data_key("in_features"), S.data_key("seed")):
        assert fresh[key] == state[key], key
    assert fresh[S.text_key("weight")] == state[S.store_key("weight")]
    assert fresh[S.field_key("weight", "bits")] == 5
    assert shared_state_of(fresh) == shared_state_of(state)
    assert apply_link(_session(), {}) is None  # no link: nothing to say


def _token(state) -> str:
    from explorer.share.link import encode_state

    return encode_state(shared_state_of(state))["s"]


@pytest.mark.parametrize("token", ["%%%", "A" * 20_000, "eJzLSM3JyVcozy/KSQEAGgQEXQ"],
                         ids=["garbage", "oversized", "not-a-state"])
def test_bad_link_changes_nothing_and_says_why(token):
    state = _session()
    before = dict(state)
    level, message = apply_link(state, {"s": token})
    assert level == "error" and "could not be opened" in message and "default" in message
    assert state == before


def test_link_url_replaces_the_query():
    assert link_url("http://h:1/app?s=old#x", "TOK") == "http://h:1/app?s=TOK"
    assert link_url(None, "TOK") == "?s=TOK"


def test_exported_safetensors_reload_into_identical_codes_and_qparams():
    configs = load_config_from_string(CASES["uint3-omse-with-activation"])
    data = make_sample_data(SETTINGS)
    yaml_text = CASES["uint3-omse-with-activation"]
    tensors, meta = load_exported(safetensors_bytes(configs, data, yaml_text))
    layer = build_layer(configs, data)
    assert torch.equal(tensors["weight.codes"].to(torch.int32), layer.quant_weight)
    assert torch.equal(tensors["weight.scale"], layer.weight_scaler)
    assert torch.equal(tensors["weight.zero_point"].long(), layer.weight_zero)
    assert torch.equal(tensors["output.scale"], layer.output_scaler)
    assert torch.equal(tensors["input.zero_point"].long(), layer.input_zero)
    assert torch.equal(dequantize_exported(tensors), layer.dequant_weight)
    assert meta["config"] == yaml_text and meta["weight.bit_type"].startswith("bits=3,")
