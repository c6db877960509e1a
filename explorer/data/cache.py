"""The data caches (no Streamlit): sample tensors and the trained digits MLP.

- `sample_data(settings, uploads)`: seeded tensors or a real layer, keyed by the (frozen,
  hashable) `DataSettings` and `upload_scope`; at most `SAMPLE_DATA_ENTRIES`.
- `digits_model(seed)`: the trained digits MLP (`DIGITS_ENTRIES` seeds); one training at a time.

``uploads`` is this session's parsed uploads keyed by digest
(`explorer.data.state.session_uploads`); uploads are keyed by the digest of their bytes
(computed once, at upload).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from explorer.core.cache import store
from explorer.core.pipeline import DataSettings, ProgressCallback, SampleData
from explorer.data.digits import DigitsModel, load_or_train_digits_model
from explorer.data.sources import UploadedTensors, make_sample_data

SAMPLE_DATA_ENTRIES = 4
DIGITS_ENTRIES = 2
_DIGITS_LOCK = threading.Lock()

Uploads = Mapping[str, UploadedTensors]


def sample_data(settings: DataSettings, uploads: Uploads | None = None) -> SampleData:
    """Sample tensors for ``settings`` (shared, never mutated): seeded synthetic ones, or a
    real layer (the digits model from `digits_model`, the session's ``uploads``)."""
    uploads = uploads or {}

    def make() -> SampleData:
        digits = digits_model(settings.seed) if settings.source == "digits" else None
        return make_sample_data(settings, uploads if settings.source == "upload" else None,
                                digits)

    key = (settings, upload_scope(settings, uploads))
    return store("data.sample_data", SAMPLE_DATA_ENTRIES).get_or_put(key, make)


def upload_scope(settings: DataSettings, uploads: Uploads | None = None) -> tuple[str, ...]:
    """The digests of the uploads ``settings`` reads that this session holds (``uploads``);
    part of the key of everything built from uploads. The caches are shared by every session
    and a link carries the digests, so without it a session opened from someone's link would
    get their results (and the safetensors export) of tensors it never uploaded. A session
    that holds the same file (same digest) shares the entries: it has the data anyway."""
    if settings.source != "upload":
        return ()
    held = uploads or {}
    return tuple(d for d in (settings.upload_weight, settings.upload_inputs) if d and d in held)


def digits_cached(seed: int) -> bool:
    """Whether the digits model for ``seed`` is already in memory."""
    return store("data.digits", DIGITS_ENTRIES).get(seed) is not None


def digits_model(seed: int, progress: ProgressCallback | None = None) -> DigitsModel:
    """The trained digits MLP for ``seed``: from memory, else from the disk cache, else trained
    (a few seconds, reported to ``progress``). One training at a time."""
    models = store("data.digits", DIGITS_ENTRIES)
    hit = models.get(seed)
    if hit is None:
        with _DIGITS_LOCK:
            hit = models.get(seed)
            if hit is None:
                hit = load_or_train_digits_model(seed=seed, progress=progress)
                models.put(seed, hit)
    return hit
