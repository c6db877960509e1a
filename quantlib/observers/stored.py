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
        self._versions: list[int | None] = []  # each chunk's version counter when observed
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
        # The caller's batch is kept without a copy (16M values: 23 ms saved) and its version
        # counter, which every in-place change bumps, is checked before use
        # (`observed_values`). Copied: inference tensors (no version counter) and small
        # views of a large storage (kept, they would pin all of it).
        if flat.is_inference() or flat.untyped_storage().nbytes() > 2 * flat.nbytes:
            flat = flat.clone(memory_format=torch.contiguous_format)
        else:
            flat = flat.contiguous()  # a copy (ours) when strided
        self._chunks.append(flat)
        self._versions.append(_version(flat))
        self._derived.clear()

    def _check_versions(self) -> None:
        """RuntimeError when a kept batch was changed in place after `update`."""
        for index, (chunk, version) in enumerate(zip(self._chunks, self._versions)):
            if _version(chunk) != version:
                raise RuntimeError(
                    f"{self.name}: calibration batch {index + 1} was changed in place after "
                    f"{type(self).__name__}.update(), which keeps it without a copy; pass "
                    "a copy (tensor.clone()) if you reuse its memory")

    def __getstate__(self) -> dict:
        self._check_versions()  # a copy of changed values would hide the change
        return self.__dict__.copy()

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        # deepcopy and unpickling give fresh tensors (version 0), held only by this copy
        self._versions = [_version(chunk) for chunk in self._chunks]

    def observed_values(self) -> torch.Tensor:
        """All observed values as one [C, N] float32 tensor. Raises RuntimeError when a
        batch was changed in place after `update` (its values are gone)."""
        self._check_versions()
        if len(self._chunks) > 1:
            self._chunks = [torch.cat(self._chunks, dim=1)]
            self._versions = [_version(self._chunks[0])]
        return self._chunks[0]

    def derived(self, key, build):
        """``build(observed_values())``, cached until the next update. The cache is shared
        with `with_bit_type` copies, so a bit-width sweep sorts or bins the data once."""
        if key not in self._derived:
            self._derived[key] = build(self.observed_values())
        return self._derived[key]


def _version(tensor: torch.Tensor) -> int | None:
    """The tensor's version counter (bumped by every in-place change); None for an inference
    tensor, which has none (and is always a copy of ours, see `_observe`)."""
    return None if tensor.is_inference() else tensor._version
