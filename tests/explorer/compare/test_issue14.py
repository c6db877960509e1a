"""Issue 14 in the Compare logic: A and B differ from the start, channels are sorted, every
config's dot sits on its curve, and no "-0.00" dB."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from explorer.compare import clip as CC
from explorer.compare import figures as CF
from explorer.compare import runs as C
from explorer.compare import state as CS
from explorer.compare.runs import TensorRun
from explorer.compare.tables import format_db
from explorer.core import state as S
from quantlib.config_loader import load_config_from_string
from quantlib.observers import build_observer

DOCUMENT = """weight:
  # mine
  calibration_mode: channel_wise
  bit_type: {bits: 8, signed: true}
  observer_type: MinmaxObserver
outputs:
  bit_type: {bits: 8, signed: false}
  observer_type: PercentileObserver
"""


def test_b_starts_as_a_with_other_observers_and_says_so():
    entries, note = C.ab_pair(DOCUMENT)
    (a_name, a_text), (b_name, b_text) = entries
    assert (a_name, a_text) == ("A", DOCUMENT)
    a, b = load_config_from_string(a_text), load_config_from_string(b_text)
    assert b["weight"].observer_type == "PercentileObserver"
    assert b["output"].observer_type == "MinmaxObserver"
    assert b_text == DOCUMENT.replace("observer_type: MinmaxObserver", "observer_type: X") \
        .replace("observer_type: PercentileObserver", "observer_type: MinmaxObserver") \
        .replace("observer_type: X", "observer_type: PercentileObserver")  # lines kept
    assert "weight: PercentileObserver" in note and "outputs: MinmaxObserver" in note
    assert a["weight"].bit_type == b["weight"].bit_type


def test_first_visit_and_reset_seed_a_and_b_differently():
    state: dict = {}
    S.init_state(state)
    CS.init_compare_state(state)
    (_, a), (_, b) = state[CS.COMPARE_ENTRIES]
    assert a != b and state[CS.COMPARE_NOTICE][0] == "info"
    state[CS.COMPARE_NOTICE] = None
    CS.on_compare_reset(state)
    assert state[CS.COMPARE_ENTRIES][1][1] == b and "B starts as A" in state[CS.COMPARE_NOTICE][1]


def test_sorted_channel_curve_is_monotone_bounded_and_names_channels():
    qsnr = np.array([30.0, 10.0, 20.0, 40.0])
    share, shown, channel = CF.sorted_channel_curve(qsnr)
    assert list(shown) == [10.0, 20.0, 30.0, 40.0] and list(channel) == [1, 2, 0, 3]
    assert list(share) == pytest.approx([0, 100 / 3, 200 / 3, 100])
    many = np.random.default_rng(0).normal(30, 3, 20_000)
    share, shown, channel = CF.sorted_channel_curve(many, points=500)
    assert len(shown) <= 500 and np.all(np.diff(shown) >= 0)
    assert shown[0] == many.min() and shown[-1] == many.max()
    assert np.array_equal(many[channel], shown)


def test_every_clip_marker_is_filled_and_on_its_curve():
    torch.manual_seed(0)
    weight = torch.randn(32, 64)
    weight[3] *= 20
    runs = {}
    for name, text in (("uniform", DOCUMENT),
                       ("affine", DOCUMENT.replace("observer_type: MinmaxObserver",
                                                   "observer_type: MinmaxObserver\n  "
                                                   "quantization_method: Affine"))):
        config = load_config_from_string(text)["weight"]
        observer = build_observer(config)
        observer.update(weight)
        scale, zero = observer.get_quantization_params()
        lo, hi = observer.compute_range()
        bt = config.bit_type
        runs[name] = TensorRun(config, 0.0, 0.0, 0.0, torch.zeros(32), scale, zero,
                               (bt.qmin - zero) * scale, (bt.qmax - zero) * scale, lo, hi)
    view = CC.clip_view(weight, runs, 0)
    assert not all(mark.on_curve for mark in view.marks)  # channel_wise over the whole tensor
    fig = CF.make_clip_curve_figure(view, CF.config_colors(runs), "Weight")
    for mark in view.marks:
        (trace,) = [t for t in fig.data if t.name == mark.name]
        assert trace.marker.symbol == "circle"  # filled, never "circle-open"
        curve = view.curves[mark.curve]
        expected = float(np.interp(mark.threshold, curve.thresholds.numpy(),
                                   curve.total.numpy()))
        assert float(trace.y[0]) == pytest.approx(expected)
        assert f"{mark.mse:.3e}" in trace.hovertemplate  # its own MSE, in the hover


@pytest.mark.parametrize("value, text", [(-0.001, "0.00"), (0.0, "0.00"), (-1.5, "-1.50"),
                                         (math.inf, "∞ (lossless)")])
def test_db_cells_never_show_negative_zero(value, text):
    assert format_db(value) == text


def test_sweep_hover_never_says_minus_zero_below_ideal():
    bits = (8,)
    sweep = C.Sweep(bits, (C.ideal_qsnr(8) + 0.001,), (C.ideal_qsnr(8) + 0.001,))
    fig = CF.make_sweep_figure({"A": sweep}, {"A": {"weight": 8, "output": 8}}, {"A": "#000"})
    text = " ".join(str(t.hovertemplate) + str(t.customdata) for t in fig.data)
    assert "-0.00" not in text and "0.00" in text
