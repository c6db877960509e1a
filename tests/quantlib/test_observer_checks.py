"""Checks in the observers' shared core that ordinary use never reaches: a channel-count
change between calibration batches and the cap on stored calibration values."""

from __future__ import annotations

import pytest
import torch

import quantlib.observers.stored as stored
from quantlib.observers import build_observer
from quantlib.quant_config import QuantConfig


@pytest.mark.parametrize("observer", ["MinmaxObserver", "PercentileObserver"])
@pytest.mark.parametrize("axis,first,second", [(0, (4, 6), (5, 6)), (-1, (3, 4), (3, 2))],
                         ids=["axis0", "last-axis"])
def test_channel_wise_observer_refuses_a_batch_with_other_channels(observer, axis, first,
                                                                    second):
    config = QuantConfig(calibration_mode="channel_wise", observer_type=observer)
    obs = build_observer(config, channel_axis=axis, name="blk.out")
    obs.update(torch.randn(first))
    channels_before, seen_before = first[axis], obs.num_observed
    with pytest.raises(ValueError, match=rf"blk.out: channel_wise observer saw "
                                         rf"{channels_before} channels on axis {axis}, "
                                         rf"now {second[axis]}"):
        obs.update(torch.randn(second))
    assert obs.num_observed == seen_before  # the refused batch left no trace
    scale, _ = obs.get_quantization_params()
    assert scale.shape == (channels_before,)


def test_layer_wise_observer_accepts_any_shape():
    obs = build_observer(QuantConfig(calibration_mode="layer_wise"), name="t")
    obs.update(torch.randn(4, 6))
    obs.update(torch.randn(5, 3))
    assert obs.num_observed == 39


@pytest.mark.parametrize("observer", ["PercentileObserver", "OmseObserver", "KLObserver"])
def test_stored_values_are_capped(monkeypatch, observer):
    """Exactly the cap is kept; one value more is refused with the limit and a way out."""
    monkeypatch.setattr(stored, "MAX_STORED_ELEMENTS", 100)
    obs = build_observer(QuantConfig(observer_type=observer), name="blk.w")
    obs.update(torch.randn(60))
    obs.update(torch.randn(40))  # 100 in all: at the cap, accepted
    with pytest.raises(ValueError, match=r"blk.w: .*would keep 101 calibration values, over "
                                         r"its limit of 100.*MinmaxObserver"):
        obs.update(torch.randn(1))


def test_minmax_observers_store_nothing_and_have_no_cap(monkeypatch):
    monkeypatch.setattr(stored, "MAX_STORED_ELEMENTS", 10)
    for name in ("MinmaxObserver", "EmaMinmaxObserver"):
        obs = build_observer(QuantConfig(observer_type=name), name="t")
        obs.update(torch.randn(50))
        assert obs.num_observed == 50


def test_a_refused_batch_leaves_the_observer_as_it_was(monkeypatch):
    """Over the cap: refused, and neither counted nor stored, so later batches still fit."""
    monkeypatch.setattr(stored, "MAX_STORED_ELEMENTS", 100)
    obs = build_observer(QuantConfig(observer_type="PercentileObserver"), name="blk.w")
    with pytest.raises(ValueError, match="over its limit"):
        obs.update(torch.randn(101))
    assert obs.num_observed == 0
    obs.update(torch.randn(50))  # fits under the cap
    assert obs.num_observed == 50
