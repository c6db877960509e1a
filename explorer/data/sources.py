"""Where the explorer's layer and data come from (pure: no Streamlit): `make_sample_data`.

`DataSettings.source` is one of `SOURCES`:

- ``"synthetic"``: seeded distributions (`explorer.data.synthetic`).
- ``"digits"``: Linear ``model_layer`` (fc1/fc2/fc3) of the trained digits MLP
  (`explorer.data.digits`, trained with ``seed``). The weight and bias are the trained ones;
  calibration uses the layer's real fp32 input activations on the training split, the first
  ``num_batches * batch_size`` rows (capped by the 1437 rows there) in batches of
  ``batch_size``; evaluation uses the activations of all 360 held-out rows.
- ``"upload"``: the 2-D tensor ``upload_tensor`` of the uploaded file whose SHA-256 is
  ``upload_weight``, with the matching ``<prefix>.bias`` when the file has one (else a zero
  bias). Inputs are synthetic (``input_source``), or the uploaded calibration file with SHA-256
  ``upload_inputs``: its last ~20 % of rows (at most ``batch_size``) are held out for evaluation
  and the rest are batched like the digits activations.
- ``"minilm"``: Linear ``minilm_layer`` of all-MiniLM-L6-v2 with its real weight and bias and
  its real input tokens (`explorer.data.encoders.LayerSample`): calibration uses the first
  ``num_batches * batch_size`` tokens (of at most 2048) captured on the corpus's calibration
  sentences, in batches of ``batch_size``; evaluation uses up to 512 tokens of the evaluation
  sentences. Padding tokens are never included.
- ``"custom"``: the same for Linear (or Conv1D) ``minilm_layer`` of the local checkpoint the
  server was started with (``QUANT_EXPLORER_MODEL_DIR``); offered only when configured.

The tensors of an upload are passed in by the caller (`UploadedTensors`, keyed by digest); only
the digests and the tensor name are settings, so links and cache keys never carry file bytes.
When the source fixes the layer's shape, the returned settings carry that real shape.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

import torch

from explorer.core.pipeline import DataSettings, SampleData
from explorer.data import digits as digits_model
from explorer.data import encoders, minilm, synthetic
from explorer.data.uploads import UploadError, check_calibration_inputs, load_tensors

__all__ = [
    "DIGITS_SHAPES",
    "SOURCES",
    "SOURCE_LABELS",
    "UploadedTensors",
    "available_sources",
    "check_source_settings",
    "digest_bytes",
    "fixed_shape",
    "input_rows",
    "make_sample_data",
    "make_source_data",
    "pick_input_tensor",
    "split_rows",
    "weight_candidates",
    "synthetic_inputs",
]

SOURCES = ("synthetic", "digits", "upload", "minilm", "custom")
SOURCE_LABELS = {"synthetic": "Synthetic", "digits": "Trained digits MLP",
                 "upload": "Uploaded tensor", "minilm": "MiniLM-L6 (real activations)",
                 "custom": "Your checkpoint (real activations)"}
EVAL_FRACTION = 0.2  # of uploaded input rows held out for evaluation
MAX_NAME_CHARS = 512
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_MINILM_NAME = re.compile(r"^[A-Za-z0-9_.]{1,200}$")
DIGITS_SHAPES = {name: (digits_model.LAYER_SIZES[i + 1], digits_model.LAYER_SIZES[i])
                  for i, name in enumerate(digits_model.LINEAR_NAMES)}  # name -> (out, in)


@dataclass(frozen=True, eq=False)
class UploadedTensors:
    """One parsed upload: the file's name, the SHA-256 hex digest of its bytes (computed once,
    at upload) and its tensors ``{name: float32 tensor}`` (from `uploads.load_tensors`).
    """

    filename: str
    digest: str
    tensors: dict[str, torch.Tensor]

    @classmethod
    def from_bytes(cls, data: bytes, filename: str) -> UploadedTensors:
        """Parse ``data`` (raises `UploadError` for anything unusable)."""
        return cls(str(filename), digest_bytes(data), load_tensors(data, filename))


def digest_bytes(data: bytes) -> str:
    """SHA-256 hex digest of an upload's bytes."""
    return hashlib.sha256(bytes(data)).hexdigest()


def available_sources() -> tuple[str, ...]:
    """`SOURCES`, without MiniLM when it is not installed and without ``"custom"`` unless the
    server was started with a model directory."""
    return tuple(s for s in SOURCES
                 if s not in encoders.ENCODER_SOURCES or encoders.encoder_dir(s) is not None)


def weight_candidates(tensors: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, int]]:
    """``{name: (out, in)}`` of the tensors usable as a weight: non-empty, 2-D, and both sides
    at most `synthetic.MAX_FEATURES`. Raises `UploadError` naming the tensors when there is none.
    """
    found = {name: (int(t.shape[0]), int(t.shape[1])) for name, t in tensors.items()
             if t.dim() == 2 and t.numel() > 0}
    fits = {name: shape for name, shape in found.items() if max(shape) <= synthetic.MAX_FEATURES}
    if not fits:
        listed = ", ".join(f"{n} {list(t.shape)}" for n, t in list(tensors.items())[:10])
        why = (f"every 2-D tensor has a side over {synthetic.MAX_FEATURES}" if found
               else "no 2-D [out_features, in_features] tensor")
        raise UploadError(f"no usable weight: {why}; tensors: {listed or 'none'}")
    return fits


def pick_input_tensor(tensors: Mapping[str, torch.Tensor], in_features: int) -> torch.Tensor:
    """The calibration inputs of an upload as float32 [rows, in_features]: its only tensor, or
    else the first whose last dimension is ``in_features``. Raises `UploadError` otherwise
    (wrong shape, no rows, NaN/Inf)."""
    return check_calibration_inputs(_select_input(tensors, in_features), in_features)


def input_rows(tensors: Mapping[str, torch.Tensor], in_features: int) -> int:
    """How many rows `pick_input_tensor` would return, from shapes only (no pass over the
    values); raises `UploadError` for a shape that does not fit ``in_features``."""
    x = _select_input(tensors, in_features)
    if x.dim() < 2 or x.shape[-1] != in_features:
        raise UploadError(f"calibration inputs have shape {list(x.shape)}; the last dimension "
                          f"must be the layer's in_features={in_features}")
    return x.numel() // in_features


def _select_input(tensors: Mapping[str, torch.Tensor], in_features: int) -> torch.Tensor:
    if len(tensors) == 1:
        return next(iter(tensors.values()))
    for t in tensors.values():
        if t.dim() >= 2 and t.shape[-1] == in_features:
            return t
    listed = ", ".join(f"{n} {list(t.shape)}" for n, t in list(tensors.items())[:10])
    raise UploadError(f"no tensor in the calibration file ends in the layer's "
                      f"in_features={in_features}; tensors: {listed}")


def split_rows(x: torch.Tensor, num_batches: int, batch_size: int) -> tuple[torch.Tensor, ...]:
    """The first ``num_batches * batch_size`` rows of ``x`` [rows, in] (all rows when fewer)
    in batches of ``batch_size`` (the last one may be shorter)."""
    rows = min(num_batches * batch_size, x.shape[0])
    return tuple(x[start:min(start + batch_size, rows)] for start in range(0, rows, batch_size))


def check_source_settings(settings: DataSettings) -> None:
    """Raise ``ValueError`` naming the field (and the valid choices) for a bad string setting.

    Checks the source, the digits layer, the MiniLM layer name (against the installed model's
    Linears when available, else its form), the upload digests (64 hex characters or empty)
    and the uploaded tensor's name (a short single-line string).
    """
    _check_str("source", settings.source, SOURCES)
    _check_str("model_layer", settings.model_layer, digits_model.LINEAR_NAMES)
    _check_str("minilm_layer", settings.minilm_layer, None)
    if not _MINILM_NAME.match(settings.minilm_layer):
        raise ValueError(f"minilm_layer {settings.minilm_layer!r} is not a Linear name such as "
                         "'encoder.layer.0.attention.self.query'")
    if settings.source == "minilm" and encoders.encoder_dir("minilm") is not None:
        names = [lin.name for lin in minilm.list_minilm_linears()]
        _check_str("minilm_layer", settings.minilm_layer, tuple(names))
    for field in ("upload_weight", "upload_inputs"):
        value = getattr(settings, field)
        _check_str(field, value, None)
        if value and not _DIGEST.match(value):
            raise ValueError(f"{field} must be a SHA-256 hex digest (64 characters) or empty, "
                             f"got {value[:80]!r}")
    _check_str("upload_tensor", settings.upload_tensor, None)
    if len(settings.upload_tensor) > MAX_NAME_CHARS or not settings.upload_tensor.isprintable():
        raise ValueError(f"upload_tensor must be a printable name of at most {MAX_NAME_CHARS} "
                         "characters")


def fixed_shape(settings: DataSettings,
                uploads: Mapping[str, UploadedTensors] | None = None) -> tuple[int, int] | None:
    """The ``(out_features, in_features)`` the source fixes, or None (synthetic, or a missing
    upload or MiniLM install). Never loads a model or a tensor's values."""
    if settings.source == "digits":
        return DIGITS_SHAPES.get(settings.model_layer)
    if settings.source == "minilm":
        if not minilm.minilm_available():
            return None
        shapes = {lin.name: (lin.out_features, lin.in_features)
                  for lin in minilm.list_minilm_linears()}
        return shapes.get(settings.minilm_layer)
    if settings.source == "upload":
        upload = (uploads or {}).get(settings.upload_weight)
        tensor = None if upload is None else upload.tensors.get(settings.upload_tensor)
        if tensor is None or tensor.dim() != 2:
            return None
        return int(tensor.shape[0]), int(tensor.shape[1])
    return None


def make_source_data(settings: DataSettings,
                     uploads: Mapping[str, UploadedTensors] | None = None,
                     digits: digits_model.DigitsModel | None = None,
                     sample: encoders.LayerSample | None = None) -> SampleData:
    """The tensors of a non-synthetic source (see the module docstring).

    ``uploads`` maps digests to parsed uploads; ``digits`` is the trained model for
    ``settings.seed`` (loaded or trained with the default cache when None); ``sample`` is the
    encoder layer's `LayerSample` (loaded through the disk cache when None). Raises
    ``ValueError`` (an `UploadError` for upload problems) with a clear message.
    """
    check_source_settings(settings)
    s = settings
    if s.source == "digits":
        weight, bias, calibration, eval_batch = _digits_tensors(s, digits)
    elif s.source == "upload":
        weight, bias, calibration, eval_batch = _upload_tensors(s, uploads or {})
    elif s.source in encoders.ENCODER_SOURCES:
        sample = sample if sample is not None else _encoder_sample(s)
        weight, bias = sample.weight, sample.bias
        calibration = split_rows(sample.calibration, s.num_batches, s.batch_size)
        eval_batch = sample.evaluation
    else:
        raise ValueError(f"source {s.source!r} has no real tensors; use "
                         "make_sample_data for synthetic data")
    out_features, in_features = weight.shape
    real = replace(s, out_features=int(out_features), in_features=int(in_features))
    return SampleData(real, weight, bias, tuple(calibration), eval_batch)


# --- per source ------------------------------------------------------------------------------


def _encoder_sample(s: DataSettings) -> encoders.LayerSample:
    """The layer's sample without the in-memory caches (the disk cache still applies)."""
    from explorer.data.hf_model import load_text_encoder

    directory = encoders.encoder_dir(s.source)
    if directory is None:
        raise ValueError(f"the source {s.source!r} is not available on this server")
    return encoders.load_layer_sample(directory, s.minilm_layer,
                                      lambda: load_text_encoder(directory))


def _digits_tensors(s: DataSettings, digits: digits_model.DigitsModel | None):
    if digits is None:
        digits = digits_model.load_or_train_digits_model(seed=s.seed)
    elif digits.seed != s.seed:
        raise ValueError(f"the digits model was trained with seed {digits.seed}, but the "
                         f"settings ask for seed {s.seed}")
    layer = digits.linear(s.model_layer)
    rows = min(s.num_batches * s.batch_size, digits.train_x.shape[0])
    calibration = split_rows(digits.layer_inputs(s.model_layer, "train", max_rows=rows),
                             s.num_batches, s.batch_size)
    eval_batch = digits.layer_inputs(s.model_layer, "test")
    return (layer.weight.detach().clone(), layer.bias.detach().clone(), calibration,
            eval_batch)


def _upload_tensors(s: DataSettings, uploads: Mapping[str, UploadedTensors]):
    if not s.upload_weight:
        raise UploadError("no weight uploaded yet: upload a .safetensors, .npy, .pt or .pth "
                          "file in the sidebar")
    upload = uploads.get(s.upload_weight)
    if upload is None:
        raise UploadError("the uploaded weight file is no longer in this session; upload it "
                          "again")
    candidates = weight_candidates(upload.tensors)
    if s.upload_tensor not in candidates:
        listed = ", ".join(f"{n} {list(shape)}" for n, shape in list(candidates.items())[:10])
        raise UploadError(f"{upload.filename}: no usable 2-D tensor named {s.upload_tensor!r}; "
                          f"choose one of: {listed}")
    weight = upload.tensors[s.upload_tensor].contiguous()
    if not bool(torch.isfinite(weight).all()):
        raise UploadError(f"{upload.filename}: tensor {s.upload_tensor!r} contains NaN/Inf; "
                          "quantization needs finite values")
    bias = _matching_bias(upload.tensors, s.upload_tensor, weight.shape[0])
    in_features = weight.shape[1]
    if not s.upload_inputs:
        calibration, eval_batch = synthetic_inputs(s, in_features)
        return weight, bias, calibration, eval_batch
    inputs = uploads.get(s.upload_inputs)
    if inputs is None:
        raise UploadError("the uploaded calibration file is no longer in this session; upload "
                          "it again")
    try:
        x = pick_input_tensor(inputs.tensors, in_features)
    except UploadError as err:
        raise UploadError(f"{inputs.filename}: {err}") from None
    rows = x.shape[0]
    held_out = min(s.batch_size, max(1, round(EVAL_FRACTION * rows))) if rows > 1 else 0
    pool = x[:rows - held_out]
    eval_batch = x[rows - held_out:] if held_out else x
    return weight, bias, split_rows(pool, s.num_batches, s.batch_size), eval_batch


def _matching_bias(tensors: Mapping[str, torch.Tensor], name: str, out_features: int):
    """``<prefix>.bias`` [out] next to ``<prefix>.weight`` when present and finite, else 0."""
    if name.endswith("weight"):
        bias = tensors.get(name[: -len("weight")] + "bias")
        if (bias is not None and bias.dim() == 1 and bias.shape[0] == out_features
                and bool(torch.isfinite(bias).all())):
            return bias.contiguous()
    return torch.zeros(out_features)


def synthetic_inputs(s: DataSettings, in_features: int):
    """Seeded synthetic (calibration batches, eval batch) of width ``in_features``."""
    calibration = synthetic.make_calibration_batches(
        s.input_source, s.num_batches, s.batch_size, in_features, s.seed)
    eval_batch = synthetic.make_eval_batch(s.input_source, s.batch_size, in_features, s.seed)
    return tuple(calibration), eval_batch


def _check_str(field: str, value: object, choices: tuple[str, ...] | None) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a string, got {value!r}")
    if choices is not None and value not in choices:
        shown = ", ".join(repr(c) for c in choices[:40])
        raise ValueError(f"unknown {field} {value[:80]!r}; valid choices: {shown}")


def make_sample_data(settings: DataSettings,
                     uploads: Mapping[str, UploadedTensors] | None = None,
                     digits: digits_model.DigitsModel | None = None,
                     sample: encoders.LayerSample | None = None) -> SampleData:
    """Build the weight, bias, calibration batches and eval batch for ``settings``.

    Synthetic data is seeded; real sources come from `make_source_data` (``uploads`` maps
    upload digests to parsed files, ``digits`` is the trained model for ``settings.seed``), and
    their data's settings carry the layer's real shape. Raises ``ValueError`` (naming the
    setting) for unknown sources, sizes over the caps or unusable uploads.
    """
    s = settings
    if s.source != "synthetic":
        return make_source_data(s, uploads, digits, sample)
    weight = synthetic.make_weight(s.weight_source, s.out_features, s.in_features, s.seed)
    bias = synthetic.make_bias(s.out_features, s.in_features, s.seed)
    return SampleData(s, weight, bias, *synthetic_inputs(s, s.in_features))
