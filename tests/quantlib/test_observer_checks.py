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


STORED_OBSERVERS = ["PercentileObserver", "OmseObserver", "KLObserver"]


@pytest.mark.parametrize("observer", STORED_OBSERVERS)
def test_stored_batch_changed_in_place_is_refused(observer):
    """A batch is kept without a copy: changing it in place after update() raises (naming the
    batch) instead of calibrating on values that are no longer the observed ones."""
    obs = build_observer(QuantConfig(observer_type=observer), name="blk.out")
    first, second = torch.randn(4, 300), torch.randn(4, 300)
    obs.update(first)
    obs.update(second)
    second.mul_(3)
    with pytest.raises(RuntimeError, match=r"blk.out: calibration batch 2 was changed in "
                                           r"place after .*update\(\).*clone"):
        obs.get_quantization_params()


@pytest.mark.parametrize("observer", STORED_OBSERVERS)
def test_stored_batch_is_copied_when_a_check_cannot_vouch_for_it(observer):
    """Copied, so later changes to the caller's memory change nothing: a small slice of a large
    tensor (kept, it would pin the whole storage) and an inference tensor (no version)."""
    config = QuantConfig(observer_type=observer)
    big = torch.randn(100, 1000)
    with torch.inference_mode():
        frozen = torch.randn(1000)
    expected = []
    for batch in (big[7], frozen):
        obs = build_observer(config)
        obs.update(batch.clone())
        expected.append(obs.get_quantization_params())
    got = []
    for batch in (big[7], frozen):
        obs = build_observer(config)
        obs.update(batch)
        got.append(obs)
    big.mul_(5)
    with torch.inference_mode():
        frozen.mul_(5)
    for obs, (scale, zero) in zip(got, expected):
        new_scale, new_zero = obs.get_quantization_params()
        assert torch.equal(new_scale, scale) and torch.equal(new_zero, zero)


@pytest.mark.parametrize("observer", STORED_OBSERVERS)
def test_copies_of_a_stored_observer_keep_working(observer):
    """copy.copy shares the batches, copy.deepcopy and pickle copy them: every copy gives the
    original's qparams (a deep copy's tensors start a new version counter), and copying an
    observer whose batch was changed in place raises."""
    import copy
    import pickle

    batch = torch.randn(4, 500)
    batch.add_(1.0)  # a version counter above zero before update()
    obs = build_observer(QuantConfig(observer_type=observer), name="blk.out")
    obs.update(batch)
    expected = obs.get_quantization_params()
    for twin in (copy.copy(obs), copy.deepcopy(obs), pickle.loads(pickle.dumps(obs))):
        scale, zero = twin.get_quantization_params()
        assert torch.equal(scale, expected[0]) and torch.equal(zero, expected[1])
    batch.mul_(2)
    with pytest.raises(RuntimeError, match="changed in place"):
        copy.deepcopy(obs)
