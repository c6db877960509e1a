"""The real digits MLP: accuracy, determinism, the safetensors cache and activation capture."""

import copy

import pytest
import torch
from torch import nn

from explorer.data import digits as digits_model
from explorer.data.digits import (
    ARCH_VERSION,
    EPOCHS,
    cache_file,
    default_cache_dir,
    load_or_train_digits_model,
    train_digits_mlp,
)


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_data_split_is_fixed_stratified_and_scaled(digits):
    assert digits.train_x.shape == (1437, 64) and digits.test_x.shape == (360, 64)
    assert digits.train_x.dtype == torch.float32 and digits.train_y.dtype == torch.int64
    assert float(digits.train_x.min()) >= 0.0 and float(digits.train_x.max()) <= 1.0
    assert torch.bincount(digits.test_y, minlength=10).min() >= 35  # stratified: ~36 per class
    assert digits.linear_names == ["fc1", "fc2", "fc3"]
    shapes = [tuple(digits.linear(n).weight.shape) for n in digits.linear_names]
    assert shapes == [(256, 64), (128, 256), (10, 128)]


def test_trained_model_reaches_95_percent_held_out(digits):
    assert digits.accuracy() >= 0.95
    assert digits.accuracy(x=digits.train_x, y=digits.train_y) >= digits.accuracy() - 0.01
    assert not digits.model.training
    assert not any(p.requires_grad for p in digits.model.parameters())


def test_training_is_deterministic_and_leaves_global_state_alone(digits):
    rng_before, threads_before = torch.get_rng_state(), torch.get_num_threads()
    calls = []
    again = train_digits_mlp(digits.train_x, digits.train_y, seed=0,
                             progress=lambda f, text: calls.append((f, text)))
    assert _same_weights(again, digits.model)
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert torch.get_num_threads() == threads_before
    fractions = [f for f, _ in calls]
    assert len(fractions) == EPOCHS and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert "epoch" in calls[0][1]


def test_cache_reload_gives_identical_model(digits, digits_cache_dir):
    path = cache_file(0, digits_cache_dir)
    assert path.is_file() and path.suffix == ".safetensors" and ARCH_VERSION in path.name
    reloaded = load_or_train_digits_model(seed=0, cache_dir=digits_cache_dir)
    assert reloaded.from_cache and reloaded.train_seconds == 0.0
    assert _same_weights(reloaded.model, digits.model)
    assert reloaded.accuracy() == digits.accuracy()


def test_default_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "quant-explorer"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir().parts[-2:] == (".cache", "quant-explorer")


@pytest.fixture
def stub_training(monkeypatch, digits):
    """Replace training by a copy of the session model; records how often it ran."""
    calls = []

    def fake_train(train_x, train_y, seed=0, progress=None):
        calls.append(seed)
        return copy.deepcopy(digits.model)

    monkeypatch.setattr(digits_model, "train_digits_mlp", fake_train)
    return calls


def _valid_cache_bytes(digits) -> bytes:
    return digits.cache_path.read_bytes()


@pytest.mark.parametrize("content", [
    b"", b"not a safetensors file", "truncated", "wrong tensors",
], ids=["empty", "garbage", "truncated", "wrong-tensors"])
def test_corrupt_cache_is_ignored_retrained_and_rewritten(digits, tmp_path, stub_training,
                                                          content):
    from safetensors.torch import load_file, save

    if content == "truncated":
        content = _valid_cache_bytes(digits)[:-1000]
    elif content == "wrong tensors":
        content = save({"fc1.weight": torch.zeros(3, 3)})
    path = cache_file(0, tmp_path)
    path.write_bytes(content)
    loaded = load_or_train_digits_model(seed=0, cache_dir=tmp_path)
    assert stub_training == [0] and not loaded.from_cache
    assert _same_weights(loaded.model, digits.model)
    rewritten = load_file(str(path))  # a good file again (header key order may vary)
    assert rewritten.keys() == digits.model.state_dict().keys()
    assert all(torch.equal(t, digits.model.state_dict()[k]) for k, t in rewritten.items())
    assert load_or_train_digits_model(seed=0, cache_dir=tmp_path).from_cache


def test_non_finite_cached_weights_are_retrained(digits, tmp_path, stub_training):
    from safetensors.torch import save_file

    state = {k: v.clone() for k, v in digits.model.state_dict().items()}
    state["fc2.weight"][0, 0] = float("nan")
    save_file(state, str(cache_file(0, tmp_path)))
    loaded = load_or_train_digits_model(seed=0, cache_dir=tmp_path)
    assert stub_training == [0] and torch.isfinite(loaded.linear("fc2").weight).all()


def test_unwritable_cache_dir_still_returns_a_model(tmp_path, stub_training):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    loaded = load_or_train_digits_model(seed=0, cache_dir=blocker / "sub")
    assert stub_training == [0] and loaded.accuracy() >= 0.95
    assert list(tmp_path.iterdir()) == [blocker]


def test_cache_is_keyed_by_seed(tmp_path, stub_training):
    load_or_train_digits_model(seed=3, cache_dir=tmp_path)
    assert cache_file(3, tmp_path).is_file() and not cache_file(0, tmp_path).exists()
    assert stub_training == [3]


def test_progress_reports_completion_when_loading_from_cache(digits, digits_cache_dir):
    calls = []
    load_or_train_digits_model(0, digits_cache_dir, progress=lambda f, t: calls.append((f, t)))
    assert calls == [(1.0, "digits MLP loaded from cache")]


def test_layer_inputs_are_the_real_activations(digits):
    x = digits.train_x[:50]
    with torch.no_grad():
        h1 = torch.relu(digits.linear("fc1")(x))
        h2 = torch.relu(digits.linear("fc2")(h1))
    assert torch.equal(digits.layer_inputs("fc1", max_rows=50), x)
    assert torch.equal(digits.layer_inputs("fc2", max_rows=50), h1)
    assert torch.equal(digits.layer_inputs("fc3", max_rows=50), h2)
    assert digits.layer_inputs("fc2", split="test").shape == (360, 256)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "fc4"}, "fc1, fc2, fc3"),
    ({"name": "fc1", "split": "valid"}, "'train' or 'test'"),
    ({"name": "fc1", "max_rows": 0}, "positive integer"),
], ids=["bad-layer", "bad-split", "bad-max-rows"])
def test_layer_inputs_reject_bad_arguments(digits, kwargs, message):
    with pytest.raises(ValueError, match=message):
        digits.layer_inputs(**kwargs)


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0"], ids=repr)
def test_bad_seed_is_refused(seed, tmp_path):
    with pytest.raises(ValueError, match="seed"):
        load_or_train_digits_model(seed=seed, cache_dir=tmp_path)


def test_cache_keeps_at_most_max_files_evicting_the_least_recently_used(tmp_path,
                                                                        stub_training):
    """Each new seed writes a file; past MAX_CACHE_FILES the oldest-used ones go."""
    import os

    from explorer.data.digits import MAX_CACHE_FILES

    stale = tmp_path / "digits-mlp-64-256-128-10-v0-seed3.safetensors"  # an older version
    stale.write_bytes(b"old")
    os.utime(stale, (1, 1))
    other = tmp_path / "notes.txt"  # not a cache file: never touched
    other.write_text("keep me")
    seeds = list(range(100, 100 + MAX_CACHE_FILES + 5))
    for age, seed in enumerate(seeds):
        load_or_train_digits_model(seed=seed, cache_dir=tmp_path)
        os.utime(cache_file(seed, tmp_path), (1000 + age, 1000 + age))
    load_or_train_digits_model(seed=seeds[0], cache_dir=tmp_path)  # seed 100 is gone: retrain
    assert stub_training == [*seeds, seeds[0]]
    load_or_train_digits_model(seed=seeds[-1], cache_dir=tmp_path)  # cached: now most recent
    cached = sorted(tmp_path.glob("digits-mlp-*.safetensors"))
    assert len(cached) == MAX_CACHE_FILES and not stale.exists()
    assert cache_file(seeds[0], tmp_path).exists() and cache_file(seeds[-1], tmp_path).exists()
    assert not cache_file(seeds[1], tmp_path).exists()  # the least recently used
    assert other.read_text() == "keep me"
