"""The Single layer tab's metric cards (pure): values, plain-words help and the change since the
previous setting.

A card's delta compares it with the last *different* result shown in this session, so after
an edit each card says what the edit did ("+6.02 dB"). A change below the card's display
precision is no change: no arrow, never a red "-0.0".
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

from explorer.core.formatting import format_metric, format_qsnr
from explorer.core.pipeline import TENSOR_TITLES, PipelineResult


@dataclass(frozen=True)
class Card:
    label: str          # e.g. "Weight QSNR"
    metric: str         # qsnr | mse | cosine_similarity | clip_fraction | compression_ratio
    value: float | None
    help: str

    @property
    def text(self) -> str:
        return format_qsnr(self.value) if self.metric == "qsnr" else format_metric(
            self.metric, self.value)


HELP = {
    "qsnr": "Signal-to-quantization-noise ratio, 10·log10(Σx² / Σ(x − x̂)²) over the "
            "evaluation data. Higher is better: each extra bit adds about 6 dB; above ~40 dB "
            "the error is usually harmless, below ~20 dB it is visible.",
    "mse": "Mean squared error between the fp32 values and their dequantized copies. Lower is "
           "better; rounding alone gives about Δ²/12 per value (Δ = the scale).",
    "cosine_similarity": "Cosine of the angle between the fp32 and dequantized tensors. 1 is "
                         "identical; 0.999 is typical for 8 bits.",
    "clip_fraction": "Share of values clamped because they lie beyond the clip range (by more "
                     "than half a step). Lower is better, but clipping a few outliers can pay "
                     "for finer steps everywhere else.",
    "compression_ratio": "fp32 bytes / (packed integer codes + scales and zero points).",
}
# +1: higher is better; -1: lower is better; 0: neither (shown grey).
DIRECTION = {"qsnr": 1, "mse": -1, "cosine_similarity": 1, "clip_fraction": -1,
             "compression_ratio": 0}
SHORT = {"qsnr": "QSNR", "mse": "MSE", "cosine_similarity": "cosine",
         "clip_fraction": "clipped", "compression_ratio": "compression"}


def metric_cards(result: PipelineResult) -> dict[str, list[Card]]:
    """Each tensor's cards, keyed by tensor name (weight, output, activation)."""
    cards = {}
    for name, tensor in result.tensors.items():
        stats = tensor.statistics or {}
        values = {**{k: stats.get(k) for k in ("qsnr", "mse", "cosine_similarity",
                                               "clip_fraction")},
                  "compression_ratio": tensor.memory.get("compression_ratio")}
        cards[name] = [Card(f"{TENSOR_TITLES[name]} {SHORT[m]}", m, values[m], HELP[m])
                       for m in SHORT]
    return cards


def card_values(cards: dict[str, list[Card]]) -> dict[str, float | None]:
    """``{label: value}`` of every card: what the next result's deltas compare against."""
    return {card.label: card.value for row in cards.values() for card in row}


def card_delta(card: Card, before: float | None) -> str | None:
    """The change from ``before`` as the card shows it ("+6.02 dB", "-1.2e-08"), or None when
    there is nothing to compare or the change is below the card's display precision."""
    after = card.value
    if before is None or after is None or not (math.isfinite(before) and math.isfinite(after)):
        return None
    change = after - before
    if card.metric == "qsnr":
        text = f"{change:+.2f} dB"
    elif card.metric == "mse":
        text = f"{change:+.2e}"
    elif card.metric == "cosine_similarity":
        text = f"{change:+.6f}"
    elif card.metric == "clip_fraction":
        text = f"{100 * change:+.3f} pp"
    else:
        text = f"{change:+.2f}×"
    digits = text.lstrip("+-").split()[0].rstrip("×")
    if float(digits) == 0:  # rounds to zero at the card's precision: no change to report
        return None
    return text


# The cards are one ``st.html`` element: ten ``st.metric`` cards cost the browser ~40 ms of
# re-rendering per edit. Text takes the page's colour (light or dark theme); a change is green
# or red mixed with it, so it reads on both. The app draws this stylesheet once, outside the
# fragment that redraws the cards.
CARDS_STYLE = """<style>
.ql-cards {display: grid; grid-template-columns: repeat(auto-fit, minmax(9rem, 1fr));
  gap: 0.25rem 1rem; margin: 0.25rem 0 0.75rem;}
.ql-card-label {font-size: 0.875rem; opacity: 0.75; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; cursor: help;}
.ql-help {display: inline-block; width: 0.95rem; height: 0.95rem; line-height: 0.85rem;
  border: 1px solid currentColor; border-radius: 50%; font-size: 0.65rem; text-align: center;}
.ql-card-value {font-size: 1.4rem; line-height: 1.6; white-space: nowrap;}
.ql-card-change {min-height: 1.3rem;}
.ql-card-delta {display: inline-block; font-size: 0.8rem; padding: 0 0.4rem;
  border-radius: 0.5rem;}
.ql-good {color: color-mix(in srgb, #21c354 65%, currentColor);
  background: rgba(33, 195, 84, 0.15);}
.ql-bad {color: color-mix(in srgb, #ff4b4b 70%, currentColor);
  background: rgba(255, 75, 75, 0.14);}
.ql-neutral {background: rgba(128, 132, 149, 0.15); opacity: 0.8;}
.ql-card-note {font-size: 0.875rem; opacity: 0.75; margin: 0 0 0.5rem;}
@media (max-width: 1279px) {  /* a tensor's five cards stay one row down to 1024 px */
  .ql-cards {grid-template-columns: repeat(auto-fit, minmax(5.5rem, 1fr)); gap: 0.25rem 0.6rem;}
  .ql-card-label {white-space: normal; line-height: 1.25; min-height: 2.5em;}
  .ql-card-value {font-size: 1.1rem;}}
</style>"""


def delta_tone(card: Card, delta: str | None) -> str:
    """"good", "bad" or "neutral": how the card colours its ``delta`` text."""
    if delta is None or DIRECTION[card.metric] == 0:
        return "neutral"
    rising = not delta.startswith("-")
    return "good" if rising == (DIRECTION[card.metric] > 0) else "bad"


def cards_html(cards: dict[str, list[Card]], before: dict[str, float | None],
               unprofiled: frozenset[str] = frozenset()) -> str:
    """Each tensor's row of cards (`metric_cards`) as HTML, with a note under the row of a
    tensor in ``unprofiled`` (its profiler is off). A card shows its label (help on hover),
    value, and the change since ``before`` ({label: value}) with an arrow, green when it is an
    improvement; the change's line is kept when empty, so the first delta does not push the
    page down. Each card carries its label, value and delta as ``data-`` attributes too (for
    tests and tools)."""
    parts = []
    for name, row in cards.items():
        cells = "".join(_card_html(card, card_delta(card, before.get(card.label)))
                        for card in row)
        parts.append(f'<div class="ql-cards">{cells}</div>')
        if name in unprofiled:
            parts.append(f'<p class="ql-card-note">{html.escape(TENSOR_TITLES[name])}: '
                         "profiling is off (<code>enable_profiler: false</code>).</p>")
    return "".join(parts)


def _card_html(card: Card, delta: str | None) -> str:
    attrs = (f'data-label="{html.escape(card.label)}" data-value="{html.escape(card.text)}"'
             + ("" if delta is None else f' data-delta="{html.escape(delta)}"'))
    chip = "" if delta is None else (
        f'<span class="ql-card-delta ql-{delta_tone(card, delta)}">'
        f'{"↓" if delta.startswith("-") else "↑"} {html.escape(delta)}</span>')
    return (f'<div class="ql-card" {attrs}>'
            f'<div class="ql-card-label" title="{html.escape(card.help)}">'
            f'{html.escape(card.label)} <span class="ql-help">?</span></div>'
            f'<div class="ql-card-value">{html.escape(card.text)}</div>'
            f'<div class="ql-card-change">{chip}</div></div>')  # kept empty: nothing jumps
