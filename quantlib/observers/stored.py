"""Base for observers that need every calibration value, not only the extremes."""

from __future__ import annotations

import mmap

import torch

from quantlib.observers.base import BaseObserver

MAX_STORED_ELEMENTS = 2**28  # 1 GiB of float32
HUGE_PAGE_BYTES = 2**21
#: From this size a CPU copy goes to memory backed by transparent huge pages (see `owned_copy`).
HUGE_PAGE_COPY_BYTES = 2**23


def owned_copy(flat: torch.Tensor) -> torch.Tensor:
    """A contiguous copy of ``flat`` that shares no memory with it.

    A large copy on the CPU lands in a private anonymous mapping advised to use 2 MiB pages
    (Linux's transparent huge pages): a fresh 64 MB buffer in 4 KiB pages costs 16,384 page
    faults, more than the copy itself (16M values: 26 -> 15 ms). Elsewhere, or when the
    advice is refused, an ordinary clone.
    """
    nbytes = flat.numel() * flat.element_size()
    if (flat.device.type != "cpu" or nbytes < HUGE_PAGE_COPY_BYTES
            or not hasattr(mmap, "MADV_HUGEPAGE")):
        return flat.clone(memory_format=torch.contiguous_format)
    try:
        region = mmap.mmap(-1, nbytes + HUGE_PAGE_BYTES,
                           flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        raw = torch.frombuffer(region, dtype=torch.uint8)  # keeps the mapping alive
        start = -raw.data_ptr() % HUGE_PAGE_BYTES  # huge pages need 2 MiB alignment
        region.madvise(mmap.MADV_HUGEPAGE, start, nbytes)
    except (OSError, ValueError):
        return flat.clone(memory_format=torch.contiguous_format)
    out = raw[start:start + nbytes].view(flat.dtype).view(flat.shape)
    return out.copy_(flat)


class StoredDataObserver(BaseObserver):
    """Keeps the observed values ([C, N] chunks on the input's device) so the range is chosen
    on all calibration data at once; also tracks the running min/max."""

    def reset(self) -> None:
        super().reset()
        self._chunks: list[torch.Tensor] = []
        self._stored = 0
        self._derived: dict = {}

    def _observe(self, flat: torch.Tensor, batch_min: torch.Tensor,
                 batch_max: torch.Tensor) -> None:
        stored = self._stored + flat.numel()
        if stored > MAX_STORED_ELEMENTS:  # refused: nothing of this batch is kept
            raise ValueError(
                f"{self.name}: {type(self).__name__} would keep {stored:,} calibration "
                f"values, over its limit of {MAX_STORED_ELEMENTS:,}; use fewer or smaller "
                "calibration batches, or MinmaxObserver/EmaMinmaxObserver")
        self._stored = stored
        self._track_min_max(batch_min, batch_max)
        # A view may share memory with the caller's batch, which the caller may overwrite.
        self._chunks.append(owned_copy(flat) if flat._base is not None
                            else flat.contiguous())
        self._derived.clear()

    def observed_values(self) -> torch.Tensor:
        """All observed values as one [C, N] float32 tensor."""
        if len(self._chunks) > 1:
            self._chunks = [torch.cat(self._chunks, dim=1)]
        return self._chunks[0]

    def derived(self, key, build):
        """``build(observed_values())``, cached until the next update. The cache is shared
        with `with_bit_type` copies, so a bit-width sweep sorts or bins the data once."""
        if key not in self._derived:
            self._derived[key] = build(self.observed_values())
        return self._derived[key]
