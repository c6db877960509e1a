"""``explorer.single.metrics``: card values, plain-words help and deltas."""

import math

import pytest

from explorer.core.pipeline import DataSettings, run_pipeline
from explorer.data.sources import make_sample_data
from explorer.single.metrics import (
    Card,
    card_delta,
    card_values,
    cards_html,
    delta_tone,
    metric_cards,
)
from quantlib.config_loader import load_config_from_yaml
from tests.helpers import parse_metric_cards

SMALL = DataSettings(in_features=32, out_features=24, num_batches=2, batch_size=16)


def card(metric, value):
    return Card("x", metric, value, "")


@pytest.mark.parametrize(("metric", "before", "after", "expected"), [
    ("qsnr", 48.13, 24.05, "-24.08 dB"),
    ("qsnr", 24.0, 30.02, "+6.02 dB"),
    ("qsnr", 30.001, 30.004, None),         # below 0.01 dB: no change, no "-0.00"
    ("mse", 1e-8, 3e-8, "+2.00e-08"),
    ("cosine_similarity", 0.9999991, 0.9999989, None),
    ("clip_fraction", 0.001, 0.0035, "+0.250 pp"),
    ("clip_fraction", 0.00100001, 0.001, None),
    ("compression_ratio", 3.96, 7.8, "+3.84×"),
    ("qsnr", None, 30.0, None),
    ("qsnr", math.inf, 30.0, None),         # from lossless: no finite change to show
], ids=["qsnr-down", "qsnr-up", "qsnr-same", "mse", "cosine-same", "clip-pp", "clip-same",
        "compression", "no-before", "from-inf"])
def test_delta_text_and_no_change_below_the_display_precision(metric, before, after, expected):
    assert card_delta(card(metric, after), before) == expected


def test_delta_colours_follow_what_is_better():
    assert delta_tone(card("qsnr", 1), "+6.02 dB") == "good"       # higher is better
    assert delta_tone(card("qsnr", 1), "-6.02 dB") == "bad"
    assert delta_tone(card("mse", 1), "-1.00e-08") == "good"       # lower is better
    assert delta_tone(card("clip_fraction", 1), "+0.250 pp") == "bad"
    assert delta_tone(card("compression_ratio", 1), "+3.84×") == "neutral"
    assert delta_tone(card("qsnr", 1), None) == "neutral"


def test_cards_html_carries_each_card_escaped_with_its_delta_and_help():
    cards = [Card("Weight QSNR", "qsnr", 30.02, "Higher is <better>"),
             Card("Weight MSE", "mse", 1e-8, "Lower & better")]
    text = cards_html({"weight": cards}, {"Weight QSNR": 24.0})
    assert [(c.label, c.value, c.delta) for c in parse_metric_cards(text)] == [
        ("Weight QSNR", cards[0].text, "+6.02 dB"), ("Weight MSE", cards[1].text, None)]
    assert 'title="Higher is &lt;better&gt;"' in text and "Lower &amp; better" in text
    assert 'class="ql-card-delta ql-good">↑ +6.02 dB' in text
    assert text.count("ql-card-delta") == 1  # no chip without a change
    # every card keeps its change line, empty or not: the first delta moves nothing below
    assert cards_html({"weight": cards}, {}).count('class="ql-card-change"') == len(cards)
    assert text.count('class="ql-card-change"') == len(cards)


def test_cards_carry_the_profilers_numbers_and_help_that_says_what_is_good():
    result = run_pipeline(load_config_from_yaml("configs/attn_config.yaml"),
                          make_sample_data(SMALL))
    cards = metric_cards(result)
    assert list(cards) == ["weight", "output"]
    values = card_values(cards)
    stats = result.tensors["weight"].statistics
    assert values["Weight QSNR"] == stats["qsnr"] and values["Weight MSE"] == stats["mse"]
    assert values["Output compression"] == result.tensors["output"].memory["compression_ratio"]
    qsnr_help = cards["weight"][0].help
    assert "Higher is better" in qsnr_help and "6 dB" in qsnr_help
    assert all(c.help for row in cards.values() for c in row)
