"""Teach: one weight followed through MX, NVFP4, FP8 and block-wise INT (the layer's numbers)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from explorer.core.pipeline import DataSettings
from explorer.data.sources import make_sample_data
from explorer.teach import analysis as T
from explorer.teach.formats import float_chain_lines
from quantlib.config_loader import load_config_from_string

PRESETS = sorted(Path("configs/formats").glob("*.yaml"))


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_follow_decompose_and_codes_for_every_format(path):
    data = make_sample_data(DataSettings(in_features=128, out_features=32, num_batches=1,
                                         batch_size=32, weight_source="Student-t heavy tails"))
    analysis = T.build_analysis(load_config_from_string(path.read_text()), data)
    view = analysis.tensors["weight"]
    for row, col in ((0, 0), (5, 77), (31, 127)):
        chain = T.follow_weight(analysis, row, col)
        assert chain["matches"], chain
        if view.block_size:
            assert chain["group"] == "block" and chain["group_start"] <= col < chain["group_end"]
        if view.config.bit_type.is_float:
            assert len(float_chain_lines(chain, view.config.bit_type,
                                         None if view.tensor_scale is None
                                         else float(view.tensor_scale))) == 4
    if view.config.bit_type.family == "mx":
        assert math.log2(chain["scale"]).is_integer()  # an E8M0 scale is a power of two
    for name in analysis.tensors:
        d = T.decompose(analysis, name)
        assert d["clipping_mse"] + d["rounding_mse"] == pytest.approx(d["total_mse"])
        assert d["scale"].numel() in (1, d["per_channel"]["total_mse"].numel())
        codes = T.integer_codes(analysis, name)
        assert codes["counts"].numel() == codes["num_codes"]
