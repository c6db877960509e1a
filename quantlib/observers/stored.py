"""Base for observers that need every calibration value, not only the extremes."""

from __future__ import annotations

import torch

from quantlib.observers.base import BaseObserver

MAX_STORED_ELEMENTS = 2**28  # 1 GiB of float32


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
        self._chunks.append(flat.clone(memory_format=torch.contiguous_format)
                            if flat._base is not None else flat.contiguous())
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
