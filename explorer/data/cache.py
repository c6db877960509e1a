"""The data caches (no Streamlit): sample tensors and the trained digits MLP.

- `sample_data(settings, uploads)`: seeded tensors or a real layer, keyed by the (frozen,
  hashable) `DataSettings` and `upload_scope`; at most `SAMPLE_DATA_ENTRIES`.
- `digits_model(seed)`: the trained digits MLP (`DIGITS_ENTRIES` seeds); one training at a time.
- `text_encoder(source)`: a loaded Hugging Face encoder (MiniLM or your checkpoint), one load
  at a time; `layer_sample(source, layer)` and `encoder_stats(source)`: its real activations
  (in memory here, on disk in `explorer.data.encoders`).

``uploads`` is this session's parsed uploads keyed by digest
(`explorer.data.state.session_uploads`); uploads are keyed by the digest of their bytes
(computed once, at upload).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from explorer.core.cache import store
from explorer.core.pipeline import DataSettings, ProgressCallback, SampleData
from explorer.data import encoders
from explorer.data.digits import DigitsModel, load_or_train_digits_model
from explorer.data.hf_model import ChannelStats, TextEncoder, load_text_encoder
from explorer.data.sources import UploadedTensors, make_sample_data

SAMPLE_DATA_ENTRIES = 4
DIGITS_ENTRIES = 2
ENCODER_ENTRIES = 2      # MiniLM (~90 MB) and a custom checkpoint
LAYER_SAMPLE_ENTRIES = 8  # 4-16 MB each
_DIGITS_LOCK = threading.Lock()
_ENCODER_LOCK = threading.Lock()

Uploads = Mapping[str, UploadedTensors]


def sample_data(settings: DataSettings, uploads: Uploads | None = None) -> SampleData:
    """Sample tensors for ``settings`` (shared, never mutated): seeded synthetic ones, or a
    real layer (the digits model from `digits_model`, the session's ``uploads``)."""
    uploads = uploads or {}

    def make() -> SampleData:
        digits = digits_model(settings.seed) if settings.source == "digits" else None
        sample = (layer_sample(settings.source, settings.minilm_layer)
                  if settings.source in encoders.ENCODER_SOURCES else None)
        return make_sample_data(settings, uploads if settings.source == "upload" else None,
                                digits, sample)

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


# --- text encoders -----------------------------------------------------------------------------


def _encoder_dir(source: str):
    directory = encoders.encoder_dir(source)
    if directory is None:
        raise ValueError(f"the {encoders.ENCODER_LABELS.get(source, source)} model is not "
                         "available" + (f" (set {encoders.MODEL_DIR_ENV} when starting the "
                                        "app)" if source == "custom" else ""))
    return directory


def encoder_cached(source: str) -> bool:
    """Whether encoder ``source`` is loaded in memory."""
    directory = encoders.encoder_dir(source)
    return directory is not None and store("data.encoders", ENCODER_ENTRIES).get(
        str(directory)) is not None


def text_encoder(source: str) -> TextEncoder:
    """The loaded encoder ``source`` (`explorer.data.encoders.ENCODER_SOURCES`); loads it
    (a few seconds, importing ``transformers``) the first time. One load at a time."""
    directory = _encoder_dir(source)
    models = store("data.encoders", ENCODER_ENTRIES)
    hit = models.get(str(directory))
    if hit is None:
        with _ENCODER_LOCK:
            hit = models.get(str(directory))
            if hit is None:
                hit = load_text_encoder(directory)
                models.put(str(directory), hit)
    return hit


def layer_sample_cached(source: str, layer: str) -> bool:
    """Whether `layer_sample` for ``(source, layer)`` is in memory."""
    directory = encoders.encoder_dir(source)
    return directory is not None and store("data.layer_samples", LAYER_SAMPLE_ENTRIES).get(
        (str(directory), layer)) is not None


def layer_sample(source: str, layer: str) -> encoders.LayerSample:
    """Weight, bias and real input tokens of Linear ``layer`` of encoder ``source``: from
    memory, else the disk cache, else captured (loading the encoder)."""
    directory = _encoder_dir(source)
    return store("data.layer_samples", LAYER_SAMPLE_ENTRIES).get_or_put(
        (str(directory), layer),
        lambda: encoders.load_layer_sample(directory, layer, lambda: text_encoder(source)))


def encoder_stats(source: str, progress: ProgressCallback | None = None
                  ) -> dict[str, ChannelStats]:
    """Per-channel input statistics of every Linear of encoder ``source`` (cached)."""
    directory = _encoder_dir(source)
    return store("data.encoder_stats", ENCODER_ENTRIES).get_or_put(
        str(directory), lambda: encoders.load_channel_stats(
            directory, lambda: text_encoder(source), progress=progress))
