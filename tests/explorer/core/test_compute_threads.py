"""One intra-op thread for small interactive work: the count inside, the restore after, and
the same numbers either way."""

from __future__ import annotations

import pytest
import torch

from explorer.core.compute_threads import SINGLE_THREAD_ELEMENTS, threads_for, work_elements
from explorer.core.pipeline import DataSettings, run_pipeline
from explorer.data.cache import sample_data
from quantlib.quant_config import QuantConfig


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_the_default_layer_counts_as_small_and_a_4k_layer_does_not():
    assert work_elements(DataSettings()) == 768 * 768 + 8 * 256 * 768
    assert work_elements(DataSettings()) <= SINGLE_THREAD_ELEMENTS
    big = DataSettings(in_features=4096, out_features=4096)
    assert work_elements(big) > SINGLE_THREAD_ELEMENTS


def test_small_work_runs_on_one_thread_and_the_count_is_restored(two_threads):
    with threads_for(SINGLE_THREAD_ELEMENTS):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with pytest.raises(RuntimeError), threads_for(1):
        raise RuntimeError("a failed calibration")
    assert torch.get_num_threads() == 2


def test_large_work_keeps_every_thread(two_threads):
    with threads_for(SINGLE_THREAD_ELEMENTS + 1):
        assert torch.get_num_threads() == 2


def test_one_thread_gives_the_same_results_as_two(two_threads):
    settings = DataSettings(in_features=96, out_features=64, num_batches=2, batch_size=64)
    data = sample_data(settings, None)
    configs = {"weight": QuantConfig(), "output": QuantConfig(), "activation": None}
    with threads_for(1):
        single = run_pipeline(configs, data)
    double = run_pipeline(configs, data)
    for name, tensor in single.tensors.items():
        other = double.tensors[name]
        assert torch.equal(tensor.scale, other.scale), name  # the same grid, bit for bit
        assert torch.allclose(tensor.error_map.blocks, other.error_map.blocks, rtol=1e-6), name
        for field, value in tensor.statistics.items():  # sums may round in another order
            if isinstance(value, float):
                assert value == pytest.approx(other.statistics[field], rel=1e-6), (name, field)
