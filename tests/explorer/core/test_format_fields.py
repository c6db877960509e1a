"""Format/Granularity widgets' YAML edits, delete_field and the block-wise pipeline views."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from explorer.core import state as S
from explorer.core.blocks import MAX_HEATMAP_SIDE, channel_clip_range
from explorer.core.format_fields import format_edits
from explorer.core.pipeline import DataSettings, build_figures, run_pipeline
from explorer.core.yaml_edit import delete_field
from explorer.data.sources import make_sample_data
from quantlib.bit_type import BitType
from quantlib.config_loader import load_config_from_string
from quantlib.quantizers import Quantizer

BLOCK = "calibration_mode: channel_wise  # keep\nbit_type:\n  bits: 8\n  signed: true\n" \
        "  name: int8\nobserver_type: KLObserver\nquantization_method: Affine\n"


@pytest.mark.parametrize("text, path, expected", [
    (BLOCK, ("bit_type", "bits"), BLOCK.replace("  bits: 8\n", "")),
    ("bit_type: {bits: 4, signed: true, name: int4}\n", ("bit_type", "bits"),
     "bit_type: {signed: true, name: int4}\n"),
    ("bit_type: {bits: 4, name: int4}\n", ("bit_type", "name"), "bit_type: {bits: 4}\n"),
    (BLOCK, ("block_size",), BLOCK),
], ids=["block", "flow-first", "flow-last", "absent"])
def test_delete_field_keeps_every_other_line(text, path, expected):
    assert delete_field(text, path) == expected


def test_float_format_drops_bits_and_fixes_what_it_implies():
    text, note = format_edits(BLOCK, "format", "mxfp4", 8, True)
    config = S.parse_text(text, "weight")[0]
    assert config is not None and config.bit_type.name == "mxfp4"
    assert config.calibration_mode == "block_wise" and config.block_size == 32
    assert config.quantization_method == "Uniform" and config.observer_type == "MinmaxObserver"
    assert "# keep" in text and "bits:" not in text and "block_size: 32" in note


def test_int_format_and_granularity_round_trip():
    text, _ = format_edits(BLOCK, "format", "nvfp4", 8, True)
    text, _ = format_edits(text, "format", "int", 4, True)
    config = S.parse_text(text, "weight")[0]
    assert config.bit_type.name == "int4" and config.block_size == 16
    text, note = format_edits(text, "calibration_mode", "layer_wise", 4, True)
    assert S.parse_text(text, "weight")[0].block_size is None and "block_size removed" in note


def test_block_wise_results_have_bounded_scale_maps_and_per_channel_views():
    data = make_sample_data(DataSettings(in_features=128, out_features=64, num_batches=1,
                                         batch_size=32))
    text = Path("configs/formats/nvfp4.yaml").read_text()
    result = run_pipeline(load_config_from_string(text), data)
    weight = result.tensors["weight"]
    assert weight.block_scales.shape == (64, 8)
    assert max(weight.block_scales.blocks.shape) <= MAX_HEATMAP_SIDE
    assert weight.clip_lo.shape == (64,)
    figures = build_figures(result)
    assert {"weight_scales", "output_scales", "weight_channels", "output_channels"} <= set(
        figures)
    assert figures["weight_scales"].data[0].colorbar.title.text == "log2(scale)"


def test_channel_clip_range_takes_the_widest_block():
    q = Quantizer(BitType(4, True), 0, block_size=2)
    q.update_quantization_params(torch.tensor([[1.0, 2.0], [0.5, 0.25]]),
                                 torch.zeros(2, 2, dtype=torch.int64))
    lo, hi = channel_clip_range(q, True, 2)
    torch.testing.assert_close(hi, torch.tensor([14.0, 3.5]))
    torch.testing.assert_close(lo, torch.tensor([-16.0, -4.0]))
