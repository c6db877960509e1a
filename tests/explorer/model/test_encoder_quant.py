"""Whole-model quantization of MiniLM: task metrics, sensitivity, figures."""

from __future__ import annotations

import pytest
import torch

from explorer.data.corpus import load_corpus
from explorer.data.hf_model import load_text_encoder
from explorer.data.minilm import minilm_safetensors_path
from explorer.model import figures
from explorer.model.encoder_quant import (
    prepare_encoder_eval,
    retrieval_accuracy,
    run_encoder_whole_model,
)
from quantlib.bit_type import BitType
from quantlib.quant_config import QuantConfig


def config(bits: int, mode: str, signed: bool = True) -> QuantConfig:
    return QuantConfig(calibration_mode=mode, bit_type=BitType(bits, signed,
                                                               f"{'' if signed else 'u'}int{bits}"),
                       observer_type="MinmaxObserver", quantization_method="Uniform")


@pytest.fixture(scope="module")
def minilm():
    return load_text_encoder(minilm_safetensors_path().parent)


@pytest.fixture(scope="module")
def evaluation(minilm):
    return prepare_encoder_eval(minilm, load_corpus())


def test_retrieval_accuracy_counts_both_directions():
    e = torch.nn.functional.normalize(torch.tensor(
        [[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.7, 0.7]]), dim=1)
    assert retrieval_accuracy(e, [(0, 1), (2, 3)]) == 1.0
    assert retrieval_accuracy(e, [(0, 2)]) == 0.0


def test_fp32_minilm_retrieves_paraphrases(evaluation):
    assert retrieval_accuracy(evaluation.fp32_embeddings, evaluation.eval_pairs) >= 0.95
    assert evaluation.fp32_embeddings.shape == (103, 384)


def test_near_lossless_config_keeps_cosine_one_and_fp32_retrieval(minilm, evaluation):
    """16-bit per-channel weights and outputs: no quantlib format is plain fp32, so this is
    the closest config. Measured: mean cosine 0.99981 (min-max output ranges from the
    calibration sentences clip a few larger evaluation values), retrieval unchanged."""
    summary = run_encoder_whole_model(
        minilm, evaluation, {"weight": config(16, "channel_wise"),
                             "output": config(16, "channel_wise")}, "MiniLM")
    assert summary.mean_cosine > 0.999 and summary.min_cosine > 0.99
    assert summary.retrieval == summary.fp32_retrieval
    assert len(summary.layers) == 36 and summary.layers[0]["weight_qsnr"] > 80


def test_int8_per_channel_with_sensitivity_for_every_layer(minilm, evaluation):
    seen = []
    summary = run_encoder_whole_model(
        minilm, evaluation, {"weight": config(8, "channel_wise"),
                             "output": config(8, "channel_wise")}, "MiniLM",
        sensitivity=True, progress=lambda f, text: seen.append(f))
    assert summary.mean_cosine > 0.99  # measured: ~0.998
    assert summary.retrieval >= summary.fp32_retrieval - 0.03
    assert len(summary.sensitivity) == 36
    assert all(cos > 0.99 for cos, _ in summary.sensitivity.values())
    assert seen == sorted(seen) and seen[-1] == 1.0
    fig = figures.make_encoder_sensitivity_figure(summary.sensitivity, summary.mean_cosine)
    assert len(fig.data[0].x) == 36


def test_per_tensor_int8_input_activations_hurt_more_than_per_channel(minilm, evaluation):
    base = {"weight": config(8, "channel_wise"), "output": config(8, "channel_wise")}
    per_tensor = run_encoder_whole_model(
        minilm, evaluation, {**base, "activation": config(8, "layer_wise")}, "MiniLM")
    per_channel = run_encoder_whole_model(
        minilm, evaluation, {**base, "activation": config(8, "channel_wise")}, "MiniLM")
    assert per_tensor.mean_cosine < per_channel.mean_cosine


def test_layer_names_are_tracked_through_every_block():
    names = [f"encoder.layer.{i}.{p}" for i in range(6) for p in ("output.dense", "x")]
    assert figures.same_layer_in_every_block("encoder.layer.3.output.dense", names) == [
        f"encoder.layer.{i}.output.dense" for i in range(6)]
    assert figures.same_layer_in_every_block("pooler", names) == ["pooler"]
    assert figures.top_channels(torch.tensor([1.0, 5.0, 3.0]), 2) == [1, 2]
    fig = figures.make_channel_outlier_figure("l", torch.tensor([1.0, 9.0, 2.0]),
                                              torch.tensor([3.0, 50.0, 3.0]), 10)
    assert "ch 1" in [a.text for a in fig.layout.annotations]
