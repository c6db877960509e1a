"""Hugging Face text encoders, offline: load, tokenise, mean-pool, capture Linear inputs.

No Streamlit, and ``transformers`` is imported only inside `load_text_encoder` (it takes ~3 s
and pulls in torchao), never when the app starts.

- `load_text_encoder(directory)`: ``AutoModel`` / ``AutoTokenizer`` from a local directory
  (``local_files_only``, ``HF_HUB_OFFLINE=1``, safetensors weights only: a ``.bin`` would be
  unpickled, so it is refused; ``trust_remote_code`` stays off). GPT-2-style ``Conv1D`` layers
  (weight stored transposed, [in, out]) become equal ``nn.Linear`` layers (weight [out, in]),
  so every projection is an ``nn.Linear`` that `QuantLinear` can wrap. A BERT pooler is dropped:
  mean pooling never uses it (MiniLM then has the 36 encoder Linears).
- `encode_batches`: token batches of a sentence list, right-padded with an attention mask (or,
  with ``same_length``, batches of sentences of one token length: no padding at all).
- `embed`: sentence embeddings as sentence-transformers computes them for all-MiniLM-L6-v2:
  the mean of the last hidden states over the attention mask, then L2-normalised.
- `capture_inputs`: each named Linear's input tokens [tokens, in], padding excluded.
- `channel_stats`: per input channel absmax and kurtosis of every Linear and every LayerNorm
  (a LayerNorm's input is the residual stream, where the largest outliers live), padding
  excluded.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ChannelStats",
    "TextEncoder",
    "TokenBatch",
    "capture_inputs",
    "channel_stats",
    "conv1d_to_linear",
    "embed",
    "encode_batches",
    "load_text_encoder",
    "mean_pool",
    "select_tokens",
]

MAX_SEQ_TOKENS = 128  # sentences are truncated to this many tokens
BATCH_SENTENCES = 32
Progress = Callable[[float, str], None]


@dataclass
class TextEncoder:
    """A loaded encoder: ``model`` (eval, fp32, Conv1D converted, no pooler), its
    ``tokenizer``, the dotted names of its ``nn.Linear`` layers in model order, where it was
    loaded from and how long loading took."""

    model: nn.Module
    tokenizer: object
    linear_names: tuple[str, ...]
    directory: Path
    load_seconds: float = 0.0

    def linear(self, name: str) -> nn.Linear:
        if name not in self.linear_names:
            raise ValueError(f"unknown layer {name!r}; choose one of "
                             f"{', '.join(self.linear_names[:40])}")
        return self.model.get_submodule(name)


@dataclass(frozen=True)
class TokenBatch:
    """``input_ids`` / ``attention_mask`` [batch, tokens] (1 = real token, 0 = padding) of
    the sentences at positions ``rows`` of the encoded list."""

    rows: tuple[int, ...]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    def inputs(self) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask}


@dataclass(frozen=True)
class ChannelStats:
    """One Linear's input over real tokens: ``absmax`` [in] and ``kurtosis`` [in] (Pearson,
    3 for a Gaussian) per input channel, from ``tokens`` tokens."""

    absmax: torch.Tensor
    kurtosis: torch.Tensor
    tokens: int


def load_text_encoder(directory: str | Path) -> TextEncoder:
    """The encoder in local directory ``directory`` (see the module docstring)."""
    os.environ["HF_HUB_OFFLINE"] = "1"  # never the hub, whatever the caller's environment
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    folder = Path(directory)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"no config.json in the model directory {str(folder)!r}")
    start = time.perf_counter()
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(str(folder), local_files_only=True, use_safetensors=True,
                                      dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    if getattr(model, "pooler", None) is not None:
        model.pooler = None  # mean pooling never reads it
    conv1d_to_linear(model)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    names = tuple(n for n, m in model.named_modules() if isinstance(m, nn.Linear))
    if not names:
        raise ValueError(f"the model in {str(folder)!r} has no nn.Linear or Conv1D layers")
    return TextEncoder(model, tokenizer, names, folder, time.perf_counter() - start)


def conv1d_to_linear(model: nn.Module) -> int:
    """Replace every GPT-2-style ``Conv1D`` (weight [in, out], ``x @ W + b``) in ``model`` by
    the equal ``nn.Linear`` (weight ``W.T`` [out, in]); returns how many were replaced."""
    found = [(name, m) for name, m in model.named_modules()
             if type(m).__name__ == "Conv1D" and hasattr(m, "nf")]
    for name, conv in found:
        weight = conv.weight.detach()  # [in, out]
        linear = nn.Linear(weight.shape[0], weight.shape[1], bias=conv.bias is not None,
                           device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(weight.T)
            if conv.bias is not None:
                linear.bias.copy_(conv.bias.detach())
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, linear)
    return len(found)


def encode_batches(tokenizer, sentences: Sequence[str], batch_size: int = BATCH_SENTENCES,
                   same_length: bool = False) -> list[TokenBatch]:
    """Token batches of ``sentences`` (truncated to `MAX_SEQ_TOKENS`).

    Default: consecutive sentences in order, right-padded to the longest in the batch.
    ``same_length``: sentences grouped by token length (at most ``batch_size`` each), so no
    batch has padding; also used when the tokenizer has no padding token.
    """
    ids = tokenizer(list(sentences), truncation=True, max_length=MAX_SEQ_TOKENS)["input_ids"]
    pad_id = getattr(tokenizer, "pad_token_id", None)
    groups: list[list[int]] = []
    if same_length or pad_id is None:
        by_length: dict[int, list[int]] = {}
        for row, tokens in enumerate(ids):
            by_length.setdefault(len(tokens), []).append(row)
        for length in sorted(by_length):
            rows = by_length[length]
            groups += [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
    else:
        rows = list(range(len(ids)))
        groups = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
    batches = []
    for rows in groups:
        width = max(len(ids[r]) for r in rows)
        input_ids = torch.full((len(rows), width), 0 if pad_id is None else pad_id)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for i, r in enumerate(rows):
            input_ids[i, :len(ids[r])] = torch.tensor(ids[r])
            mask[i, :len(ids[r])] = 1
        batches.append(TokenBatch(tuple(rows), input_ids, mask))
    return batches


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[batch, tokens, hidden] -> [batch, hidden]: the mean over real tokens (mask 1)."""
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


@torch.no_grad()
def embed(model: nn.Module, batches: Sequence[TokenBatch], progress: Progress | None = None
          ) -> torch.Tensor:
    """L2-normalised mean-pooled sentence embeddings [sentences, hidden], in sentence order."""
    rows = sum(len(b.rows) for b in batches)
    out: torch.Tensor | None = None
    for i, batch in enumerate(batches):
        hidden = model(**batch.inputs()).last_hidden_state
        pooled = F.normalize(mean_pool(hidden, batch.attention_mask), p=2, dim=1)
        if out is None:
            out = torch.empty(rows, pooled.shape[1])
        out[list(batch.rows)] = pooled
        if progress is not None:
            progress((i + 1) / len(batches), f"embedding: batch {i + 1}/{len(batches)}")
    assert out is not None, "no sentences"
    return out


def select_tokens(x: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The real tokens of a Linear input ``x`` [batch, tokens, in] -> [real tokens, in]:
    rows where ``attention_mask`` [batch, tokens] is 1 (padding dropped), in batch order."""
    if x.shape[:2] != attention_mask.shape:
        raise ValueError(f"input {tuple(x.shape)} does not match the attention mask "
                         f"{tuple(attention_mask.shape)}")
    return x[attention_mask.bool()]


@torch.no_grad()
def capture_inputs(encoder: TextEncoder, batches: Sequence[TokenBatch], names: Sequence[str],
                   max_tokens: int) -> dict[str, torch.Tensor]:
    """The input of each named Linear on ``batches``: [tokens, in] float32, real tokens only,
    the first ``max_tokens`` of them (the forward stops once every layer has enough)."""
    modules = {name: encoder.linear(name) for name in names}
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in modules}
    counts = dict.fromkeys(modules, 0)
    current: list[torch.Tensor] = []

    def make_hook(name: str):
        def hook(module, args):
            if counts[name] < max_tokens:
                tokens = select_tokens(args[0].detach(), current[0])[:max_tokens - counts[name]]
                parts[name].append(tokens.float().clone())
                counts[name] += tokens.shape[0]
        return hook

    handles = [m.register_forward_pre_hook(make_hook(n)) for n, m in modules.items()]
    try:
        for batch in batches:
            if min(counts.values()) >= max_tokens:
                break
            current[:] = [batch.attention_mask]
            encoder.model(**batch.inputs())
    finally:
        for handle in handles:
            handle.remove()
    return {name: torch.cat(found) for name, found in parts.items()}


@torch.no_grad()
def channel_stats(encoder: TextEncoder, batches: Sequence[TokenBatch],
                  progress: Progress | None = None) -> dict[str, ChannelStats]:
    """`ChannelStats` of the input of every Linear and every ``nn.LayerNorm`` (the residual
    stream) over all real tokens of ``batches`` (float64 moments, one forward pass)."""
    sums: dict[str, list] = {}
    current: list[torch.Tensor] = []

    def make_hook(name: str):
        def hook(module, args):
            x = select_tokens(args[0].detach(), current[0]).double()
            acc = sums.setdefault(name, [0, None, 0.0, 0.0, 0.0, 0.0])
            absmax = x.abs().amax(0)
            acc[0] += x.shape[0]
            acc[1] = absmax if acc[1] is None else torch.maximum(acc[1], absmax)
            x2 = x * x
            acc[2] = acc[2] + x.sum(0)
            acc[3] = acc[3] + x2.sum(0)
            acc[4] = acc[4] + (x2 * x).sum(0)
            acc[5] = acc[5] + (x2 * x2).sum(0)
        return hook

    watched = [(n, m) for n, m in encoder.model.named_modules()
               if isinstance(m, (nn.Linear, nn.LayerNorm))]
    handles = [m.register_forward_pre_hook(make_hook(n)) for n, m in watched]
    try:
        for i, batch in enumerate(batches):
            current[:] = [batch.attention_mask]
            encoder.model(**batch.inputs())
            if progress is not None:
                progress((i + 1) / len(batches), f"channel statistics: batch {i + 1}/"
                                                  f"{len(batches)}")
    finally:
        for handle in handles:
            handle.remove()
    out = {}
    for name, _ in watched:
        if name not in sums:  # never called (e.g. a final LayerNorm that mean pooling skips)
            continue
        n, absmax, s1, s2, s3, s4 = sums[name]
        m1, m2, m3, m4 = s1 / n, s2 / n, s3 / n, s4 / n
        var = (m2 - m1 ** 2).clamp(min=1e-30)
        central4 = m4 - 4 * m1 * m3 + 6 * m1 ** 2 * m2 - 3 * m1 ** 4
        out[name] = ChannelStats(absmax.float(), (central4 / var ** 2).float(), int(n))
    return out
