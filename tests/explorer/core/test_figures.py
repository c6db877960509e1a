"""Behaviour of the pure Plotly figure builders in ``explorer.core.figures``."""

import json
import math

import numpy as np
import pytest
import torch

from explorer.core.blocks import block_reduce
from explorer.core.channel_figures import make_per_channel_figure
from explorer.core.figures import (
    LOG_EMPTY_BIN,
    MAX_CHANNEL_POINTS,
    MAX_LEVEL_LINES,
    figure_payload_bytes,
    make_error_heatmap,
    make_histogram_figure,
    make_memory_figure,
    make_timing_figure,
)

TWO_MB = 2 * 1024 * 1024


def make_histogram(num_bins=64, lo=-0.75, hi=0.5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {
        "edges": torch.linspace(-1, 1, num_bins + 1, dtype=torch.float64),
        "fp32_counts": torch.randint(0, 1000, (num_bins,), generator=generator),
        "dequant_counts": torch.randint(0, 1000, (num_bins,), generator=generator),
        "clip_range": (lo, hi),
    }


def shapes_named(fig, name):
    return [shape for shape in fig.layout.shapes if shape.name == name]


def reference_block_reduce(error, row_block, col_block, reduce):
    """Loop-per-block reference for ``block_reduce``."""
    rows, cols = error.shape
    out = torch.empty(math.ceil(rows / row_block), math.ceil(cols / col_block))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            block = error[i * row_block : (i + 1) * row_block, j * col_block : (j + 1) * col_block]
            out[i, j] = block.abs().mean() if reduce == "mean" else block.abs().max()
    return out


# --- histogram ---------------------------------------------------------------------------


@pytest.mark.parametrize("log_y", [False, True], ids=["linear-y", "log-y"])
def test_histogram_draws_both_counts_and_clip_lines_at_the_clip_range(log_y):
    histogram = make_histogram(lo=-0.75, hi=0.5)
    fig = make_histogram_figure(histogram, "weight", log_y=log_y)
    fp32, dequant = fig.data
    assert (fp32.name, dequant.name) == ("fp32", "dequantized")
    edges = histogram["edges"].numpy()
    for trace, counts in ((fp32, histogram["fp32_counts"].numpy()),
                          (dequant, histogram["dequant_counts"].numpy())):
        # a step outline over the edges: each bin's count from its left edge to the next
        assert trace.line.shape == "hv" and trace.mode == "lines"
        np.testing.assert_allclose(trace.x, edges)
        # log scale: an empty bin sits under a count of 1, so the outline stays one path
        expected = np.where(counts > 0, counts, LOG_EMPTY_BIN) if log_y else counts
        np.testing.assert_array_equal(trace.y[:-1], expected)
        assert trace.y[-1] == trace.y[-2]
        assert 0 < LOG_EMPTY_BIN < 1 and not np.isnan(trace.y).any()
        # the hover shows the true count and the bin's range
        np.testing.assert_array_equal(trace.customdata[:-1, 2], counts)
        np.testing.assert_allclose(trace.customdata[:, 0], edges)
        np.testing.assert_allclose(trace.customdata[:-1, 1], edges[1:])
        assert "customdata[2]" in trace.hovertemplate
    assert fp32.fill == "tozeroy" and dequant.fill is None  # the line never hides the area
    for name, x in (("clip lo", -0.75), ("clip hi", 0.5)):
        (line,) = shapes_named(fig, name)
        assert line.x0 == line.x1 == x
        assert line.line.dash == "dash"
    assert fig.layout.yaxis.type == ("log" if log_y else None)
    assert fig.layout.title.text.startswith("weight")
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text


def test_histogram_draws_each_quantization_level_when_few():
    levels = torch.linspace(-0.75, 0.5, 16)
    fig = make_histogram_figure(make_histogram(), "w4", levels=levels)
    drawn = sorted(shape.x0 for shape in shapes_named(fig, "quantization level"))
    np.testing.assert_allclose(drawn, levels.numpy(), rtol=1e-6)
    assert "16 quantization levels" in fig.layout.title.text


def test_histogram_caps_level_lines_and_says_so():
    levels = torch.linspace(-1, 1, 256)
    fig = make_histogram_figure(make_histogram(), "w8", levels=levels)
    drawn = sorted(shape.x0 for shape in shapes_named(fig, "quantization level"))
    assert len(drawn) == MAX_LEVEL_LINES
    assert drawn[0] == -1 and drawn[-1] == 1
    assert f"showing {MAX_LEVEL_LINES} of 256" in fig.layout.title.text


def test_histogram_with_too_many_bins_is_merged_keeping_totals():
    histogram = make_histogram(num_bins=2000)
    fig = make_histogram_figure(histogram, "big")
    fp32, dequant = fig.data
    assert len(fp32.y) <= 512 + 1  # bins, plus the count repeated at the last edge
    assert fp32.y[:-1].sum() == histogram["fp32_counts"].sum().item()
    assert dequant.y[:-1].sum() == histogram["dequant_counts"].sum().item()
    assert fp32.x[0] == pytest.approx(-1) and fp32.x[-1] == pytest.approx(1)
    assert bool((np.diff(fp32.x) > 0).all())  # merged bins stay contiguous and ordered


def test_histogram_with_mismatched_counts_raises():
    histogram = make_histogram()
    histogram["dequant_counts"] = histogram["dequant_counts"][:-1]
    with pytest.raises(ValueError, match="edges"):
        make_histogram_figure(histogram, "bad")


# --- block_reduce --------------------------------------------------------------------------


def test_block_reduce_of_a_known_matrix_matches_hand_computed_blocks():
    error = torch.tensor(
        [
            [1.0, -2.0, 3.0, 4.0, 0.0, 5.0],
            [-1.0, 2.0, -3.0, 4.0, 6.0, 1.0],
            [0.0, 0.0, 8.0, 8.0, 2.0, 2.0],
            [4.0, 4.0, 0.0, -8.0, 2.0, -2.0],
        ]
    )
    mean, row_block, col_block = block_reduce(error, max_side=3, reduce="mean")
    assert (row_block, col_block) == (2, 2)
    expected_mean = torch.tensor([[1.5, 3.5, 3.0], [2.0, 6.0, 2.0]])
    torch.testing.assert_close(mean, expected_mean)
    maximum, _, _ = block_reduce(error, max_side=3, reduce="max")
    torch.testing.assert_close(maximum, torch.tensor([[2.0, 4.0, 6.0], [4.0, 8.0, 2.0]]))


def test_block_reduce_partial_edge_blocks_average_only_real_elements():
    error = torch.arange(25.0).reshape(5, 5)  # blocks of 3: rows/cols {0,1,2} and {3,4}
    mean, row_block, col_block = block_reduce(error, max_side=2, reduce="mean")
    assert (row_block, col_block) == (3, 3)
    expected = torch.tensor(
        [
            [6.0, 8.5],  # mean of rows 0-2 x cols 0-2, then rows 0-2 x cols 3-4
            [18.5, 21.0],  # rows 3-4 x cols 0-2, then the 2x2 corner {18, 19, 23, 24}
        ]
    )
    torch.testing.assert_close(mean, expected)


@pytest.mark.parametrize("reduce", ["mean", "max"], ids=str)
def test_block_reduce_non_divisible_matches_a_loop_reference(reduce):
    error = torch.randn(300, 700, generator=torch.Generator().manual_seed(0))
    reduced, row_block, col_block = block_reduce(error, reduce=reduce)
    assert (row_block, col_block) == (2, 3)
    assert reduced.shape == (150, 234)
    reference = reference_block_reduce(error, row_block, col_block, reduce)
    torch.testing.assert_close(reduced, reference)


@pytest.mark.parametrize(
    "shape",
    [(1, 1), (256, 256), (257, 1), (3, 8192), (4096, 4096), (1000, 513)],
    ids=lambda s: f"{s[0]}x{s[1]}",
)
def test_block_reduce_output_is_at_most_256_by_256_and_covers_everything(shape):
    error = torch.ones(shape)
    reduced, row_block, col_block = block_reduce(error)
    assert reduced.shape[0] <= 256 and reduced.shape[1] <= 256
    assert reduced.shape[0] * row_block >= shape[0] > (reduced.shape[0] - 1) * row_block
    assert reduced.shape[1] * col_block >= shape[1] > (reduced.shape[1] - 1) * col_block
    torch.testing.assert_close(reduced, torch.ones_like(reduced))  # padding never dilutes


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reduce": "median"}, "valid choices"),
        ({"max_side": 0}, "max_side"),
    ],
    ids=["unknown-reduce", "zero-side"],
)
def test_block_reduce_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        block_reduce(torch.ones(4, 4), **kwargs)


def test_block_reduce_rejects_non_matrices():
    with pytest.raises(ValueError, match="2-D"):
        block_reduce(torch.ones(4))


# --- error heatmap -------------------------------------------------------------------------


def test_large_heatmap_is_aggregated_bounded_and_labelled():
    error = torch.randn(4096, 4096, generator=torch.Generator().manual_seed(0))
    fig = make_error_heatmap(error, "weight error", "output channel", "input channel")
    (heatmap,) = fig.data
    expected, _, _ = block_reduce(error)
    np.testing.assert_allclose(np.asarray(heatmap.z), expected.numpy(), rtol=1e-6)
    assert heatmap.x[1] == 16 and heatmap.y[-1] == 4096 - 16  # original index units
    label = "mean |error| per 16×16 block"
    assert label in fig.layout.title.text
    assert heatmap.colorbar.title.text == label
    assert fig.layout.xaxis.title.text == "input channel"
    assert fig.layout.yaxis.title.text == "output channel"
    assert figure_payload_bytes(fig) <= TWO_MB


def test_small_heatmap_is_not_aggregated():
    error = torch.arange(-6.0, 6.0).reshape(3, 4)
    fig = make_error_heatmap(error, "output error", "token", "feature", reduce="max")
    (heatmap,) = fig.data
    np.testing.assert_array_equal(np.asarray(heatmap.z), error.abs().numpy())
    assert heatmap.colorbar.title.text == "|error|"
    assert "block" not in fig.layout.title.text
    assert list(heatmap.x) == [0, 1, 2, 3]


def test_heatmap_names_the_max_aggregation():
    fig = make_error_heatmap(torch.ones(600, 600), "e", "r", "c", reduce="max")
    assert fig.data[0].colorbar.title.text == "max |error| per 3×3 block"


# --- per-channel ---------------------------------------------------------------------------


def plotted_values(fig):
    return np.concatenate([np.asarray(trace.y, dtype=np.float64) for trace in fig.data])


def test_per_channel_plots_qsnr_and_clip_band_per_channel():
    qsnr = torch.tensor([30.0, 25.0, 40.0], dtype=torch.float64)
    lo, hi = torch.tensor([-1.0, -2.0, -0.5]), torch.tensor([1.0, 2.5, 0.5])
    fig = make_per_channel_figure(qsnr, lo, hi, "weight")
    traces = {trace.name: trace for trace in fig.data}
    np.testing.assert_array_equal(traces["QSNR"].y, qsnr.numpy())
    np.testing.assert_array_equal(traces["clip lo"].y, lo.numpy())
    np.testing.assert_array_equal(traces["clip hi"].y, hi.numpy())
    assert traces["clip lo"].fill == "tonexty"  # the band between lo and hi
    assert traces["QSNR"].yaxis != traces["clip lo"].yaxis  # two rows
    assert fig.layout.yaxis.title.text == "QSNR (dB)"


def test_infinite_qsnr_is_capped_for_display_and_flagged_in_hover():
    qsnr = torch.tensor([20.0, math.inf, 35.0, math.inf], dtype=torch.float64)
    fig = make_per_channel_figure(qsnr, None, None, "output")
    assert np.isfinite(plotted_values(fig)).all()
    (lossless,) = [trace for trace in fig.data if trace.name.startswith("lossless")]
    assert list(lossless.x) == [1, 3]
    assert (np.asarray(lossless.y) > 35).all()
    assert "+inf" in lossless.hovertemplate
    json.loads(fig.to_json())  # serialises to valid JSON


def test_all_lossless_channels_still_plot():
    fig = make_per_channel_figure(torch.full((5,), math.inf), None, None, "lossless")
    assert np.isfinite(plotted_values(fig)).all()
    assert len(fig.data) == 2  # the capped line and the lossless markers


def test_4096_channels_are_plotted_one_point_each_within_budget():
    generator = torch.Generator().manual_seed(0)
    qsnr = 30 + 5 * torch.randn(4096, generator=generator, dtype=torch.float64)
    hi = torch.rand(4096, generator=generator)
    fig = make_per_channel_figure(qsnr, -hi, hi, "weight")
    assert len(fig.data[0].x) == 4096
    assert figure_payload_bytes(fig) <= TWO_MB


def test_many_channels_are_downsampled_to_min_max_per_block():
    channels = 10_000
    qsnr = torch.full((channels,), 30.0, dtype=torch.float64)
    qsnr[5000], qsnr[7001] = 3.0, math.inf
    hi = torch.ones(channels)
    hi[9999] = 7.0
    fig = make_per_channel_figure(qsnr, -hi, hi, "wide")
    traces = {trace.name: trace for trace in fig.data}
    block = math.ceil(channels / MAX_CHANNEL_POINTS)
    assert all(len(trace.x) <= MAX_CHANNEL_POINTS for trace in fig.data)
    worst = np.asarray(traces["worst QSNR"].y)
    assert worst.min() == 3.0 and traces["worst QSNR"].x[worst.argmin()] == 5000 // block * block
    assert np.asarray(traces["clip hi"].y)[-1] == 7.0  # the partial last block keeps its max
    (lossless,) = [trace for trace in fig.data if trace.name.startswith("lossless")]
    assert list(lossless.x) == [7001 // block * block]
    assert f"block of {block}" in fig.layout.title.text


def test_per_channel_rejects_mismatched_clip_ranges():
    with pytest.raises(ValueError, match="must match"):
        make_per_channel_figure(torch.zeros(4), torch.zeros(3), torch.zeros(3), "bad")
    with pytest.raises(ValueError, match="both"):
        make_per_channel_figure(torch.zeros(4), torch.zeros(4), None, "bad")


# --- timing, memory, payload ---------------------------------------------------------------


def test_timing_figure_stacks_stage_times_per_tensor():
    times = {"weight": {"observe": 1.5, "quantize": 0.25}, "output": {"observe": 4.0}}
    fig = make_timing_figure(times)
    traces = {trace.name: trace for trace in fig.data}
    assert set(traces) == {"observe", "quantize"}
    assert all(trace.orientation == "h" for trace in fig.data)
    assert list(traces["observe"].y) == ["weight", "output"]
    assert list(traces["observe"].x) == [1.5, 4.0]
    assert traces["quantize"].x[0] == 0.25 and math.isnan(traces["quantize"].x[1])
    assert fig.layout.barmode == "stack"
    assert fig.layout.xaxis.title.text == "time (ms)"


def test_memory_figure_compares_fp32_packed_and_qparam_bytes():
    memory = {
        "weight": {
            "fp32_bytes": 4096,
            "quantized_bytes": 1024,
            "qparam_bytes": 64,
            "compression_ratio": 4096 / 1088,
        },
        "output": {
            "fp32_bytes": 800,
            "quantized_bytes": 200,
            "qparam_bytes": 8,
            "compression_ratio": 800 / 208,
        },
    }
    fig = make_memory_figure(memory)
    traces = {trace.name: trace for trace in fig.data}
    assert list(traces["fp32"].y) == [4096, 800]
    assert list(traces["quantized (packed)"].y) == [1024, 200]
    assert list(traces["scales + zero points"].y) == [64, 8]
    assert list(traces["quantized (packed)"].text) == ["3.76×", "3.85×"]
    assert fig.layout.yaxis.title.text == "bytes"


@pytest.mark.parametrize(
    "make",
    [lambda: make_timing_figure({}), lambda: make_memory_figure({})],
    ids=["timing", "memory"],
)
def test_empty_timing_and_memory_say_there_is_no_data(make):
    assert "no" in make().layout.title.text


def test_payload_bytes_is_the_json_size():
    fig = make_histogram_figure(make_histogram(), "w")
    assert figure_payload_bytes(fig) == len(fig.to_json().encode("utf-8"))


def test_sorted_per_channel_puts_the_worst_first_and_names_them():
    qsnr = torch.tensor([30.0, 12.0, math.inf, 25.0, 5.0, 40.0, 18.0], dtype=torch.float64)
    lo = -torch.arange(1.0, 8.0)
    hi = torch.arange(1.0, 8.0)
    fig = make_per_channel_figure(qsnr, lo, hi, "weight", order="qsnr")
    traces = {trace.name: trace for trace in fig.data}
    line = traces["QSNR"]
    assert list(line.customdata) == [4, 1, 6, 3, 0, 5, 2]  # channel numbers, worst first
    finite = np.asarray(line.y)[:-1]
    np.testing.assert_array_equal(finite, [5.0, 12.0, 18.0, 25.0, 30.0, 40.0])
    assert line.y[-1] > 40  # the lossless channel, drawn at the cap, last
    worst = traces["worst 5"]
    assert list(worst.text) == ["ch 4", "ch 1", "ch 6", "ch 3", "ch 0"]
    # the clip range row follows the same channel order
    np.testing.assert_array_equal(traces["clip hi"].y, hi.numpy()[[4, 1, 6, 3, 0, 5, 2]])
    (lossless,) = [t for t in fig.data if t.name.startswith("lossless")]
    assert list(lossless.customdata) == [2]
    assert "sorted by QSNR" in fig.layout.title.text


def test_sorted_per_channel_keeps_the_worst_and_best_when_thinned():
    channels = 3 * MAX_CHANNEL_POINTS + 7
    qsnr = torch.linspace(10, 50, channels, dtype=torch.float64).flip(0)
    fig = make_per_channel_figure(qsnr, None, None, "wide", order="qsnr")
    line = fig.data[0]
    assert len(line.x) <= MAX_CHANNEL_POINTS
    assert line.customdata[0] == channels - 1 and line.customdata[-1] == 0
    assert line.y[0] == 10.0 and line.y[-1] == 50.0
    assert f"of {channels} ranks drawn" in fig.layout.title.text


def test_unknown_channel_order_lists_the_choices():
    with pytest.raises(ValueError, match="index"):
        make_per_channel_figure(torch.zeros(3), None, None, "x", order="random")
