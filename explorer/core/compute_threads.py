"""Intra-op threads for the interactive pipeline.

The browser that shows the page usually runs on the same few cores as the server. A parallel
torch op then waits for its slowest thread, and one of them is often descheduled: with the page
redrawing, the default layer's calibrate-and-profile took 175-250 ms on two threads and 60-67
ms on one (on a quiet machine 27 ms on two, 46 ms on one; `benchmarks/RESULTS.md`). Small work
therefore runs on one thread, and large work, where the threads pay for themselves, on all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from explorer.core.pipeline import DataSettings

# Weight plus calibration values up to which one thread is faster while a browser shares the
# cores (the default 768x768 layer with 8x256 inputs is 2.2M).
SINGLE_THREAD_ELEMENTS = 1 << 22


def work_elements(settings: DataSettings) -> int:
    """The values one calibration on ``settings`` touches: the weight and every calibration
    input."""
    return settings.in_features * (settings.out_features
                                   + settings.num_batches * settings.batch_size)


@contextlib.contextmanager
def threads_for(elements: int) -> Iterator[None]:
    """One intra-op thread for the calling thread's torch ops while ``elements`` is small; the
    previous count is restored afterwards. The grid is the same; sums may round in another
    order (metrics agree to float rounding)."""
    before = torch.get_num_threads()
    if elements > SINGLE_THREAD_ELEMENTS or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
