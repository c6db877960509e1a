"""Sidebar: the sample-data source (synthetic, trained digits MLP, uploaded tensor, MiniLM).

`render_source` draws the source picker and the chosen source's widgets at the top of the
"Sample data" section, and, when the source fixes the layer's shape, writes that real shape
into the shape widgets' keys before they are drawn (`explorer.single.panel.render_sidebar`
then disables them).
The upload callbacks parse a file once, when it changes (the SHA-256 of its bytes becomes the
cache key); a bad file leaves an error under its uploader and keeps the previous tensors.
The callbacks take the session state as a mapping, so tests call them with a plain dict.
"""

from __future__ import annotations

import re

import streamlit as st
import torch

from explorer.core import state as S
from explorer.core.panel import run_with_progress
from explorer.core.pipeline import DataSettings
from explorer.data import cache as data_cache
from explorer.data import encoders, sources
from explorer.data import state as DS
from explorer.data.digits import LINEAR_NAMES
from explorer.data.sources import SOURCE_LABELS, UploadedTensors, weight_candidates
from explorer.data.uploads import UploadError

MAX_UPLOAD_MB = 200  # the uploaders' transport limit (data.uploads checks bytes too)
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")  # ASCII punctuation: Markdown can escape it
WEIGHT_TYPES = ["safetensors", "npy", "pt", "pth"]
INPUT_TYPES = ["npy", "safetensors"]


# --- callbacks (no Streamlit calls) ----------------------------------------------------------


def on_source_change(state) -> None:
    """Back to synthetic: restore the shape the user had there (else the default shape)."""
    if state[S.data_key("source")] != "synthetic":
        return
    default = DataSettings()
    saved = state.get(DS.SYNTHETIC_SHAPE) or (default.in_features, default.out_features)
    state[S.data_key("in_features")], state[S.data_key("out_features")] = saved


def on_file_upload(state, kind: str) -> None:
    """An uploader changed (``kind`` "weight" or "inputs"): parse the new file, or forget the
    removed one (removing the inputs goes back to synthetic inputs)."""
    widget, accept = {"weight": (DS.UPLOAD_WEIGHT_FILE, accept_weight_upload),
                      "inputs": (DS.UPLOAD_INPUT_FILE, accept_input_upload)}[kind]
    upload = state.get(widget)
    if upload is None:
        forget_upload(state, kind)
        return
    accept(state, upload.name, upload.getvalue())


def accept_weight_upload(state, name: str, data: bytes) -> bool:
    """Parse a weight file; on success it replaces the previous one and its first usable 2-D
    tensor is picked. On failure the error is kept for the uploader and nothing else changes."""
    try:
        upload = UploadedTensors.from_bytes(data, name)
        candidates = weight_candidates(upload.tensors)
        finite = [n for n in candidates if bool(torch.isfinite(upload.tensors[n]).all())]
        if not finite:
            raise UploadError(f"{name!r}: every usable 2-D tensor contains NaN/Inf; "
                              "quantization needs finite values")
    except UploadError as err:
        message = str(err)
        state[DS.UPLOAD_WEIGHT_ERROR] = (message if message.startswith(repr(name))
                                        else f"{name!r}: {message}")
        return False
    state[DS.UPLOAD_WEIGHT] = upload  # one weight file per session: the old one is dropped
    state[S.data_key("upload_weight")] = upload.digest
    state[S.data_key("upload_tensor")] = finite[0]
    state[DS.UPLOAD_WEIGHT_ERROR] = None
    state[DS.UPLOAD_INPUT_ERROR] = None  # it was about the previous weight's in_features
    return True


def accept_input_upload(state, name: str, data: bytes) -> bool:
    """Parse a calibration-input file; checks it against the current weight's in_features
    when one is uploaded. On failure the error is kept and the previous inputs stay."""
    try:
        upload = UploadedTensors.from_bytes(data, name)
        in_features = _upload_in_features(state)
        if in_features is not None:
            sources.pick_input_tensor(upload.tensors, in_features)
        elif not any(t.dim() >= 2 for t in upload.tensors.values()):
            raise UploadError("calibration inputs must be 2-D [rows, in_features]; tensors: "
                              + ", ".join(f"{n} {list(t.shape)}"
                                          for n, t in list(upload.tensors.items())[:10]))
    except UploadError as err:
        message = str(err)
        state[DS.UPLOAD_INPUT_ERROR] = (message if message.startswith(repr(name))
                                       else f"{name!r}: {message}")
        return False
    state[DS.UPLOAD_INPUTS] = upload
    state[S.data_key("upload_inputs")] = upload.digest
    state[DS.UPLOAD_INPUT_ERROR] = None
    return True


def forget_upload(state, which: str) -> None:
    """Drop the weight (``"weight"``) or input (``"inputs"``) upload and its error."""
    if which == "weight":
        state[DS.UPLOAD_WEIGHT] = None
        state[S.data_key("upload_weight")] = ""
        state[S.data_key("upload_tensor")] = ""
        state[DS.UPLOAD_WEIGHT_ERROR] = None
    else:
        state[DS.UPLOAD_INPUTS] = None
        state[S.data_key("upload_inputs")] = ""
        state[DS.UPLOAD_INPUT_ERROR] = None


def _upload_in_features(state) -> int | None:
    shape = sources.fixed_shape(_settings_for_upload(state), DS.session_uploads(state))
    return None if shape is None else shape[1]


def _settings_for_upload(state) -> DataSettings:
    return DataSettings(source="upload", upload_weight=state[S.data_key("upload_weight")],
                        upload_tensor=state[S.data_key("upload_tensor")])


def markdown_text(text: str) -> str:
    """``text`` with every ASCII punctuation character backslash-escaped, so Streamlit's
    Markdown shows it as written. File names and tensor names come from the uploader (a file
    may be called ``![x](http://...).npy``, or a safetensors tensor ``**bold** $x$``), and
    errors and captions quote them."""
    return _PUNCTUATION.sub(r"\\\1", str(text))


# --- sidebar ---------------------------------------------------------------------------------


def render_source(state) -> bool:
    """The source picker and that source's widgets; syncs a fixed shape into the shape
    widgets' keys. Returns whether the source fixes the layer's shape."""
    available = sources.available_sources()
    key = S.data_key("source")
    if state.get(key) not in available:
        state[key] = "synthetic"
    st.selectbox("Data source", available, format_func=SOURCE_LABELS.get, key=key,
                 on_change=on_source_change, args=(state,),
                 help="Synthetic distributions, a layer of a small trained model (real weights "
                      "and activations), your own tensor, or a Linear of MiniLM-L6 (or your "
                      "checkpoint) with its real activations on the corpus sentences.")
    source = state[key]
    if source == "synthetic":
        state[DS.SYNTHETIC_SHAPE] = (state[S.data_key("in_features")],
                                          state[S.data_key("out_features")])
        return False
    if source == "digits":
        _render_digits(state)
    elif source == "upload":
        _render_upload(state)
    else:
        _render_encoder(state, source)
    shape = sources.fixed_shape(S.data_settings(state), DS.session_uploads(state))
    if shape is not None:
        state[S.data_key("out_features")], state[S.data_key("in_features")] = shape
    return True


def inputs_fixed(state) -> bool:
    """Whether the source supplies its own calibration inputs (the input picker is moot)."""
    source = state[S.data_key("source")]
    return source in ("digits", *encoders.ENCODER_SOURCES) or (
        source == "upload" and bool(state[S.data_key("upload_inputs")]))


def data_caption(settings: DataSettings) -> str:
    """What the calibration and evaluation data are, for the sidebar caption."""
    rows = settings.num_batches * settings.batch_size
    if settings.source == "digits":
        used = min(rows, 1437)
        return (f"Calibration: {used} real inputs of {settings.model_layer} from the training "
                f"split (of 1437) in batches of {settings.batch_size}; evaluation: all 360 "
                "held-out rows. The seed is the model's training seed.")
    if settings.source in encoders.ENCODER_SOURCES:
        used = min(rows, encoders.CALIBRATION_TOKENS)
        return (f"Calibration: up to {used} real input tokens of {settings.minilm_layer} on the "
                f"corpus's calibration sentences (padding excluded) in batches of "
                f"{settings.batch_size}; evaluation: up to {encoders.EVAL_TOKENS} tokens of the "
                "evaluation sentences.")
    if settings.source == "upload" and settings.upload_inputs:
        return (f"Calibration: up to {rows} rows of the uploaded inputs in batches of "
                f"{settings.batch_size}; about 20 % of the rows (at most {settings.batch_size}) "
                "are held out for evaluation.")
    return (f"Calibration set: {settings.num_batches} × {settings.batch_size} × "
            f"{settings.in_features} values; a held-out batch of {settings.batch_size} "
            "rows is used for evaluation.")


def ensure_digits_model(seed: int):
    """The digits model for ``seed``, training it under a progress bar the first time.
    Returns None (after showing an error) when it cannot be loaded or trained."""
    if data_cache.digits_cached(seed):
        return data_cache.digits_model(seed)
    return run_with_progress(
        "Training the digits MLP (first use, a few seconds)…",
        lambda progress: data_cache.digits_model(seed, progress=progress), "digits model",
        failed="The digits model could not be trained; the details are in the server log.")


def _render_digits(state) -> None:
    key = S.data_key("model_layer")
    if state.get(key) not in LINEAR_NAMES:
        state[key] = LINEAR_NAMES[0]
    st.selectbox("Layer", LINEAR_NAMES, key=key,
                 format_func=lambda n: "{} [{} × {}]".format(n, *sources.DIGITS_SHAPES[n]),
                 help="MLP 64 → fc1 → ReLU → fc2 → ReLU → fc3 → 10, trained on scikit-learn's "
                      "8×8 digits.")
    ensure_digits_model(int(state[S.data_key("seed")]))


def _render_encoder(state, source: str) -> None:
    """MiniLM (layers listed from the file header) or your checkpoint (loaded to list its
    Linear and Conv1D layers); then the layer's real activations, under a progress bar the
    first time (from the disk cache after that)."""
    if source == "minilm":
        from explorer.data.minilm import list_minilm_linears

        shapes = {lin.name: (lin.out_features, lin.in_features) for lin in list_minilm_linears()}
    else:
        encoder = run_with_progress(
            "Loading your checkpoint…", lambda progress: data_cache.text_encoder(source),
            "custom checkpoint", failed="Your checkpoint could not be loaded; the details are "
            "in the server log.")
        if encoder is None:
            return
        shapes = {n: tuple(encoder.linear(n).weight.shape) for n in encoder.linear_names}
    key = S.data_key("minilm_layer")
    if state.get(key) not in shapes:
        state[key] = next(iter(shapes))
    st.selectbox("Layer", list(shapes), key=key,
                 format_func=lambda n: "{} [{} × {}]".format(n, *shapes[n]),
                 help="Every nn.Linear (a GPT-2 Conv1D counts, its weight transposed back) with "
                      "its real weight and its real input tokens on the corpus sentences.")
    state[S.data_key("out_features")], state[S.data_key("in_features")] = shapes[state[key]]
    layer = state[key]
    if not data_cache.layer_sample_cached(source, layer):
        run_with_progress(
            "Capturing the layer's real activations (the first use loads the model)…",
            lambda progress: data_cache.layer_sample(source, layer), "layer activations",
            failed="The layer's activations could not be captured; the details are in the "
                   "server log.")


def _render_upload(state) -> None:
    st.file_uploader("Weight tensor", type=WEIGHT_TYPES, key=DS.UPLOAD_WEIGHT_FILE,
                     on_change=on_file_upload, args=(state, "weight"),
                     max_upload_size=MAX_UPLOAD_MB,
                     help=".safetensors, .npy, or .pt/.pth (a tensor or a state dict, read "
                          "without unpickling); at most 200 MB, sides at most 8192.")
    if state.get(DS.UPLOAD_WEIGHT_ERROR):
        st.error(f"{markdown_text(state[DS.UPLOAD_WEIGHT_ERROR])} — the previous data stays "
                 "in use.",
                 icon="🚫")
    weight = state.get(DS.UPLOAD_WEIGHT)
    if weight is None:
        st.info("Upload a weight tensor [out_features, in_features] to quantize it.")
    else:
        candidates = weight_candidates(weight.tensors)
        key = S.data_key("upload_tensor")
        if state.get(key) not in candidates:
            state[key] = next(iter(candidates))
        st.selectbox("Tensor", list(candidates), key=key,
                     format_func=lambda n: f"{n} [{candidates[n][0]} × {candidates[n][1]}]",
                     help="Any 2-D tensor of the file; its bias is used when the file has a "
                          "matching '.bias', else the bias is zero.")
        st.caption(f"Using {markdown_text(weight.filename)} (sha256 {weight.digest[:12]}…).")
    st.file_uploader("Calibration inputs (optional)", type=INPUT_TYPES, key=DS.UPLOAD_INPUT_FILE,
                     on_change=on_file_upload, args=(state, "inputs"),
                     max_upload_size=MAX_UPLOAD_MB,
                     help="[rows, in_features] (or [..., in_features]); without it the inputs "
                          "are synthetic.")
    inputs = state.get(DS.UPLOAD_INPUTS)
    if state.get(DS.UPLOAD_INPUT_ERROR):
        kept = "the previous inputs stay" if inputs is not None else "synthetic inputs stay"
        st.error(f"{markdown_text(state[DS.UPLOAD_INPUT_ERROR])} — {kept} in use.", icon="🚫")
    if inputs is not None:
        in_features = _upload_in_features(state)
        try:
            if in_features is not None:
                rows = sources.input_rows(inputs.tensors, in_features)
                st.caption(f"Calibrating on {markdown_text(inputs.filename)}: {rows} rows.")
        except UploadError as err:
            st.error(f"{markdown_text(f'{inputs.filename}: {err}')}. Upload matching inputs, "
                     "or use synthetic ones.", icon="🚫")
        st.button("Use synthetic inputs instead", key=DS.UPLOAD_FORGET_INPUTS,
                  on_click=forget_upload, args=(state, "inputs"))
