"""Real transformer data: MiniLM's embeddings and activations, the corpus, your checkpoint."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

from explorer.data import encoders
from explorer.data.corpus import load_corpus, read_corpus
from explorer.data.hf_model import (
    capture_inputs,
    channel_stats,
    embed,
    encode_batches,
    load_text_encoder,
    select_tokens,
)
from explorer.data.minilm import minilm_safetensors_path
from quantlib.bit_type import BitType
from quantlib.quant_config import QuantConfig
from quantlib.quant_linear import QuantLinear

MINILM_DIR = minilm_safetensors_path().parent
PARAPHRASE = ("The museum is closed on Mondays.", "On Mondays the museum does not open.")
UNRELATED = "Penguins cannot fly, but they are excellent swimmers."


@pytest.fixture(scope="module")
def minilm():
    return load_text_encoder(MINILM_DIR)


# --- the corpus --------------------------------------------------------------------------------


def test_corpus_has_pairs_distractors_and_a_split_that_keeps_pairs_whole():
    pairs, distractors = read_corpus()
    sentences = [s for p in pairs for s in p] + distractors
    assert len(sentences) >= 256 and len(pairs) >= 64 and len(set(sentences)) == len(sentences)
    split = load_corpus()
    assert not set(split.calibration) & set(split.evaluation)
    assert len(split.calibration) + len(split.evaluation) == len(sentences)
    eval_pairs = {(split.evaluation[i], split.evaluation[j]) for i, j in split.eval_pairs}
    assert eval_pairs <= set(pairs) and len(eval_pairs) == 36
    assert any(d in split.evaluation for d in distractors)  # retrieval has distractors


# --- loading and pooling -----------------------------------------------------------------------


def test_embeddings_match_mean_pooling_over_transformers_outputs(minilm):
    from transformers import AutoModel, AutoTokenizer

    sentences = list(load_corpus().evaluation[:24])
    ours = embed(minilm.model, encode_batches(minilm.tokenizer, sentences, batch_size=8))
    model = AutoModel.from_pretrained(str(MINILM_DIR), local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(MINILM_DIR), local_files_only=True)
    batch = tokenizer(sentences, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    reference = F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1)
    assert F.cosine_similarity(ours, reference).min() >= 0.9999


def test_embeddings_match_sentence_transformers(minilm):
    from sentence_transformers import SentenceTransformer

    sentences = list(load_corpus().calibration[:16])
    reference = SentenceTransformer(str(MINILM_DIR), device="cpu", local_files_only=True)
    expected = torch.as_tensor(reference.encode(sentences, convert_to_numpy=True))
    ours = embed(minilm.model, encode_batches(minilm.tokenizer, sentences))
    assert F.cosine_similarity(ours, expected).min() >= 0.9999


def test_a_paraphrase_pair_scores_above_an_unrelated_pair(minilm):
    e = embed(minilm.model, encode_batches(minilm.tokenizer, [*PARAPHRASE, UNRELATED]))
    assert float(e[0] @ e[1]) > float(e[0] @ e[2]) + 0.3
    assert torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)


def test_minilm_has_36_linears_and_no_pooler(minilm):
    assert len(minilm.linear_names) == 36 and minilm.model.pooler is None
    assert minilm.linear_names[-1] == "encoder.layer.5.output.dense"


# --- token selection and outliers --------------------------------------------------------------


def test_select_tokens_drops_padding():
    x = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert torch.equal(select_tokens(x, mask), x[[0, 0, 1], [0, 1, 0]])


def test_captured_inputs_exclude_padding(minilm):
    """A short sentence batched with a long one is padded; its captured tokens must equal
    those captured alone, and the count must be the real tokens only. With padding leaking
    in, both the count and the values would differ."""
    short, long = "A cat sleeps.", ("The committee voted to increase the annual membership fee "
                                     "after a very long and heated discussion.")
    name = "encoder.layer.2.intermediate.dense"
    together = encode_batches(minilm.tokenizer, [short, long], batch_size=2)
    assert int((together[0].attention_mask == 0).sum()) > 5  # padding is present
    both = capture_inputs(minilm, together, [name], 10_000)[name]
    alone = [capture_inputs(minilm, encode_batches(minilm.tokenizer, [s]), [name], 10_000)[name]
             for s in (short, long)]
    assert both.shape[0] == int(together[0].attention_mask.sum())
    assert torch.allclose(both, torch.cat(alone), atol=1e-4)
    capped = capture_inputs(minilm, together, [name], 7)[name]
    assert capped.shape == (7, 384)


def test_layer_zero_has_the_known_outlier_channels(minilm):
    stats = channel_stats(minilm, encode_batches(minilm.tokenizer, load_corpus().calibration))
    residual = stats["encoder.layer.0.output.LayerNorm"].absmax  # the residual stream
    assert float(residual.max()) >= 20 * float(residual.median())  # measured: ~100x, |x| ~224
    assert float(residual.max()) > 150
    ffn_down = stats["encoder.layer.0.output.dense"].absmax
    assert float(ffn_down.max()) >= 10 * float(ffn_down.median())  # measured: ~17x
    top = {int(i) for i in residual.argsort(descending=True)[:3]}
    later = stats["encoder.layer.3.output.LayerNorm"].absmax
    assert top & {int(i) for i in later.argsort(descending=True)[:3]}  # the same channels
    kurtosis = stats["encoder.layer.0.output.LayerNorm"].kurtosis  # per channel, over tokens
    assert torch.isfinite(kurtosis).all() and float(kurtosis.min()) >= 1.0  # always >= 1


# --- the disk cache ----------------------------------------------------------------------------


def test_layer_samples_are_cached_on_disk_and_read_back_without_the_model(minilm, tmp_path):
    name = "encoder.layer.0.attention.output.dense"
    calls = []

    def get():
        calls.append(1)
        return minilm

    first = encoders.load_layer_sample(MINILM_DIR, name, get, cache_dir=tmp_path)
    again = encoders.load_layer_sample(MINILM_DIR, name, get, cache_dir=tmp_path)
    assert len(calls) == 1
    assert torch.equal(first.calibration, again.calibration)
    assert first.calibration.shape == (1914, 384)  # every real calibration token (< the cap)
    assert first.evaluation.shape == (encoders.EVAL_TOKENS, 384)
    assert torch.equal(first.weight, minilm.linear(name).weight)
    files = list((tmp_path / "encoders").glob("enc-*.safetensors"))
    assert len(files) == 1
    files[0].write_bytes(b"broken")  # a broken file is recomputed, never trusted
    encoders.load_layer_sample(MINILM_DIR, name, get, cache_dir=tmp_path)
    assert len(calls) == 2


# --- your own checkpoint -----------------------------------------------------------------------


def _save_tiny(kind: str, folder):
    from transformers import BertConfig, BertModel, BertTokenizerFast, GPT2Config, GPT2Model

    torch.manual_seed(0)
    if kind == "bert":
        model = BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64))
    else:
        model = GPT2Model(GPT2Config(vocab_size=30522, n_embd=32, n_layer=2, n_head=2,
                                     n_positions=128))
    model.save_pretrained(str(folder))
    BertTokenizerFast(vocab_file=str(MINILM_DIR / "vocab.txt")).save_pretrained(str(folder))
    return model.eval()


@pytest.mark.parametrize("kind", ["bert", "gpt2"], ids=["tiny-bert", "tiny-gpt2-conv1d"])
def test_custom_checkpoint_loads_with_every_projection_as_a_linear(kind, tmp_path, monkeypatch):
    original = _save_tiny(kind, tmp_path)
    monkeypatch.setenv(encoders.MODEL_DIR_ENV, str(tmp_path))
    assert encoders.encoder_dir("custom") == tmp_path
    encoder = load_text_encoder(encoders.encoder_dir("custom"))
    expected = 12 if kind == "bert" else 8  # BERT: 6 per block; GPT-2: c_attn, c_proj, c_fc, c_proj
    assert len(encoder.linear_names) == expected
    for name in encoder.linear_names:
        source = original.get_submodule(name)  # nn.Linear (BERT) or Conv1D (GPT-2)
        q = QuantLinear(encoder.linear(name), _int8(), _int8(), layer_name=name)
        q.mode = "fp32"
        x = torch.randn(3, 5, q.in_features, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            assert torch.allclose(q(x), source(x), atol=1e-5, rtol=1e-5)
    if kind == "gpt2":  # Conv1D stores [in, out]: the Linear holds the transpose
        conv = original.get_submodule("h.0.mlp.c_fc")
        assert type(conv).__name__ == "Conv1D"
        assert torch.equal(encoder.linear("h.0.mlp.c_fc").weight, conv.weight.T)
    e = embed(encoder.model, encode_batches(encoder.tokenizer, list(PARAPHRASE)))
    assert e.shape == (2, 32) and torch.isfinite(e).all()
    sample = encoders.load_layer_sample(tmp_path, encoder.linear_names[0], lambda: encoder,
                                        cache_dir=tmp_path / "cache")
    assert sample.calibration.shape[1] == encoder.linear(encoder.linear_names[0]).in_features


def _int8():
    return QuantConfig(calibration_mode="channel_wise", bit_type=BitType(8, True, "int8"),
                       observer_type="MinmaxObserver", quantization_method="Uniform")


def test_custom_checkpoint_is_off_by_default_and_set_only_by_the_operator(monkeypatch, tmp_path):
    monkeypatch.delenv(encoders.MODEL_DIR_ENV, raising=False)
    assert encoders.encoder_dir("custom") is None
    from explorer.data.sources import available_sources

    assert "custom" not in available_sources()
    encoders.configure_from_argv(["--other", "x", "--model-dir", str(tmp_path)])
    assert os.environ[encoders.MODEL_DIR_ENV] == str(tmp_path)
    assert encoders.encoder_dir("custom") is None  # no config.json there: not offered


def test_a_pickle_only_checkpoint_is_refused_never_unpickled(tmp_path):
    from transformers import BertConfig

    BertConfig(vocab_size=64, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=16).save_pretrained(str(tmp_path))
    marker = tmp_path / "unpickled"
    # A pickle that would create `marker` if anything unpickled it.
    payload = (b"cos\nsystem\n(V" + f"touch {marker}".encode() + b"\ntR.")
    (tmp_path / "pytorch_model.bin").write_bytes(payload)
    with pytest.raises((OSError, EnvironmentError, ValueError)):
        load_text_encoder(tmp_path)
    assert not marker.exists()
