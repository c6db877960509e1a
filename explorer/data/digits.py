"""A small real model for the explorer: an MLP trained offline on scikit-learn's digits.

The data is ``sklearn.datasets.load_digits`` (1797 8x8 grey images, shipped inside
scikit-learn, so no network). Pixels are scaled to [0, 1] (``/ 16``) and split 80/20, stratified
by class, with a fixed split seed (1437 train rows, 360 held-out rows); the split never depends
on the model seed, so accuracies of different seeds are comparable.

The model is ``64 -> fc1 -> ReLU -> fc2 -> ReLU -> fc3 -> 10`` (``fc1`` [256, 64], ``fc2``
[128, 256], ``fc3`` [10, 128]), trained with mini-batch Adam for a fixed number of epochs.
Training is deterministic: it seeds a forked torch RNG (the caller's global RNG is untouched)
and runs on one CPU thread, so a seed always gives bit-identical weights on a machine.

Usage::

    digits = load_or_train_digits_model(seed=0)          # trains once (~2 s), then cached
    digits.accuracy()                                    # fp32 held-out top-1, about 0.97
    x = digits.layer_inputs("fc2", split="train")        # [1437, 256] real activations
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from explorer.core.model_quant import capture_linear_inputs, top1_accuracy

__all__ = [
    "ARCH_VERSION",
    "DigitsModel",
    "LINEAR_NAMES",
    "build_digits_mlp",
    "default_cache_dir",
    "load_digits_split",
    "load_or_train_digits_model",
    "train_digits_mlp",
]

# Bump when the architecture, data preprocessing or training recipe changes: old cache files
# then no longer match and are retrained.
ARCH_VERSION = "digits-mlp-64-256-128-10-v1"
MAX_CACHE_FILES = 16  # each is ~200 KB; the least recently used beyond this are deleted
LINEAR_NAMES = ("fc1", "fc2", "fc3")
LAYER_SIZES = (64, 256, 128, 10)
SPLIT_SEED = 0
TEST_FRACTION = 0.2
EPOCHS = 30
BATCH_SIZE = 64
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-4
SPLITS = ("train", "test")

Progress = Callable[[float, str], None]
_log = logging.getLogger(__name__)


@dataclass
class DigitsModel:
    """A trained digits MLP and its data.

    - ``model``: the fp32 ``nn.Sequential`` in eval mode; its Linears are ``fc1``/``fc2``/``fc3``.
    - ``train_x`` [1437, 64] / ``test_x`` [360, 64] float32 in [0, 1];
      ``train_y`` [1437] / ``test_y`` [360] int64 class labels 0-9.
    - ``train_seconds``: time spent training (0.0 when loaded from the cache);
      ``from_cache``: whether the weights came from the cache file ``cache_path``.
    """

    model: nn.Module
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    seed: int = 0
    linear_names: list[str] = field(default_factory=lambda: list(LINEAR_NAMES))
    train_seconds: float = 0.0
    from_cache: bool = False
    cache_path: Path | None = None

    def split(self, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
        """``(x [rows, 64], y [rows])`` of ``"train"`` or ``"test"``."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; use 'train' or 'test'")
        return (self.train_x, self.train_y) if split == "train" else (self.test_x, self.test_y)

    def linear(self, name: str) -> nn.Linear:
        """The fp32 ``nn.Linear`` called ``name`` (one of ``linear_names``)."""
        if name not in self.linear_names:
            raise ValueError(f"unknown layer {name!r}; choose one of "
                             f"{', '.join(self.linear_names)}")
        return self.model.get_submodule(name)

    def accuracy(self, model: nn.Module | None = None, x: torch.Tensor | None = None,
                 y: torch.Tensor | None = None) -> float:
        """Top-1 accuracy in [0, 1] of ``model`` (default: the fp32 model) on ``x`` [rows, 64] /
        ``y`` [rows] (default: the held-out split)."""
        if (x is None) != (y is None):
            raise ValueError("give both x and y, or neither (the held-out split)")
        if x is None:
            x, y = self.test_x, self.test_y
        return top1_accuracy(self.model if model is None else model, x, y)

    def layer_inputs(self, name: str, split: str = "train",
                     max_rows: int | None = None) -> torch.Tensor:
        """The real fp32 input activations of Linear ``name`` -> [rows, in_features], captured
        with a forward hook while the fp32 model runs on the first ``max_rows`` rows of
        ``split`` (all rows when None)."""
        layer = self.linear(name)
        x, _ = self.split(split)
        if max_rows is not None:
            if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
                raise ValueError(f"max_rows must be a positive integer or None, got {max_rows!r}")
            x = x[:max_rows]
        captured = capture_linear_inputs(self.model, x, [name])[name]
        assert captured.shape == (x.shape[0], layer.in_features)
        return captured


def build_digits_mlp() -> nn.Sequential:
    """The untrained MLP: ``fc1`` [256, 64], ``relu1``, ``fc2`` [128, 256], ``relu2``,
    ``fc3`` [10, 128] (initialised from torch's global RNG, as ``nn.Linear`` does)."""
    d_in, h1, h2, d_out = LAYER_SIZES
    return nn.Sequential(OrderedDict([
        ("fc1", nn.Linear(d_in, h1)), ("relu1", nn.ReLU()),
        ("fc2", nn.Linear(h1, h2)), ("relu2", nn.ReLU()),
        ("fc3", nn.Linear(h2, d_out)),
    ]))


def load_digits_split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(train_x [1437, 64], train_y [1437], test_x [360, 64], test_y [360])``: the fixed
    stratified 80/20 split of sklearn's digits, pixels scaled to [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.data.astype("float32") / 16.0
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, digits.target, test_size=TEST_FRACTION, stratify=digits.target,
        random_state=SPLIT_SEED)
    return (torch.from_numpy(x_tr), torch.from_numpy(y_tr).long(),
            torch.from_numpy(x_te), torch.from_numpy(y_te).long())


def train_digits_mlp(train_x: torch.Tensor, train_y: torch.Tensor, seed: int = 0,
                     progress: Progress | None = None) -> nn.Sequential:
    """Train `build_digits_mlp` on ``train_x`` [rows, 64] / ``train_y`` [rows] with Adam.

    Deterministic for a seed: the init and the batch order come from a forked, seeded RNG and
    the work runs on one thread (torch's global thread count is restored afterwards).
    ``progress(fraction, text)`` is called once per epoch. Returns the model in eval mode.
    """
    _check_seed(seed)
    with torch.random.fork_rng(devices=[]), _one_thread():
        torch.manual_seed(seed)
        model = build_digits_mlp()
        order = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE,
                                     weight_decay=WEIGHT_DECAY)
        rows = train_x.shape[0]
        model.train()
        for epoch in range(EPOCHS):
            perm = torch.randperm(rows, generator=order)
            total = 0.0
            for start in range(0, rows, BATCH_SIZE):
                idx = perm[start:start + BATCH_SIZE]
                loss = F.cross_entropy(model(train_x[idx]), train_y[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * idx.numel()
            if progress is not None:
                progress((epoch + 1) / EPOCHS,
                         f"training digits MLP: epoch {epoch + 1}/{EPOCHS}, "
                         f"loss {total / rows:.4f}")
    return model.eval()


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/quant-explorer`` or ``~/.cache/quant-explorer``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "quant-explorer"


def cache_file(seed: int, cache_dir: str | Path | None = None) -> Path:
    """Where the weights for ``seed`` are cached (keyed by seed and `ARCH_VERSION`)."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return folder / f"{ARCH_VERSION}-seed{seed}.safetensors"


def load_or_train_digits_model(seed: int = 0, cache_dir: str | Path | None = None,
                               progress: Progress | None = None) -> DigitsModel:
    """The digits MLP for ``seed``: loaded from the safetensors cache file, or trained (a few
    seconds) and then cached. ``cache_dir`` defaults to `default_cache_dir`.

    Never fails because of the cache: a missing, corrupt, truncated or mismatched file is
    retrained and overwritten, and an unwritable folder only skips saving (logged).
    ``progress(fraction, text)`` reports training progress (and 1.0 when done).
    """
    _check_seed(seed)
    train_x, train_y, test_x, test_y = load_digits_split()
    path = cache_file(seed, cache_dir)
    model = _load_cached(path)
    from_cache = model is not None
    seconds = 0.0
    if model is None:
        start = time.perf_counter()
        model = train_digits_mlp(train_x, train_y, seed, progress)
        seconds = time.perf_counter() - start
        _save_cached(model, path, seed)
        _evict_old_cache_files(path.parent)
    if progress is not None:
        progress(1.0, "digits MLP loaded from cache" if from_cache else
                 f"digits MLP trained in {seconds:.1f} s")
    for p in model.parameters():
        p.requires_grad_(False)
    return DigitsModel(model=model, train_x=train_x, train_y=train_y, test_x=test_x,
                       test_y=test_y, seed=seed, train_seconds=seconds, from_cache=from_cache,
                       cache_path=path)


# --- helpers ---------------------------------------------------------------------------------


def _check_seed(seed: object) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


@contextmanager
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _load_cached(path: Path) -> nn.Sequential | None:
    """The cached model, or None when the file is missing or unusable for any reason."""
    if not path.is_file():
        return None
    try:
        from safetensors.torch import load_file

        state = load_file(str(path), device="cpu")
        model = build_digits_mlp()
        model.load_state_dict(state, strict=True)  # checks names and shapes
        if not all(bool(torch.isfinite(t).all()) for t in state.values()):
            raise ValueError("non-finite weights")
    except Exception as err:  # noqa: BLE001 - any broken cache file just means "retrain"
        _log.warning("ignoring unusable digits model cache %s (%s); retraining", path, err)
        return None
    with suppress(OSError):
        os.utime(path)  # recently used: evicted last
    return model.eval()


def _evict_old_cache_files(folder: Path) -> None:
    """Keep at most `MAX_CACHE_FILES` digits cache files (any seed, any `ARCH_VERSION`) in
    ``folder``: every new seed trains and writes a file, so without this the folder grows
    with each seed anyone picks. The least recently used go first; failures are logged."""
    try:
        files = [(f.stat().st_mtime_ns, f.name, f)
                 for f in folder.glob("digits-mlp-*-seed*.safetensors") if f.is_file()]
        files.sort(reverse=True)
        for _, _, old in files[MAX_CACHE_FILES:]:
            old.unlink(missing_ok=True)
    except OSError as err:
        _log.warning("could not trim the digits model cache in %s (%s)", folder, err)


def _save_cached(model: nn.Module, path: Path, seed: int) -> None:
    """Write the state dict atomically (temp file + rename); failures are logged only."""
    from safetensors.torch import save_file

    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        fd, tmp_name = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        os.close(fd)
        save_file(state, tmp_name, metadata={"arch": ARCH_VERSION, "seed": str(seed)})
        os.replace(tmp_name, path)
        tmp_name = None
    except Exception as err:  # noqa: BLE001 - a cache that cannot be written is only skipped
        _log.warning("could not cache the digits model at %s (%s)", path, err)
    finally:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
