"""Teaching content: formulas with this config's numbers, observer notes and scenarios.

Pure (no Streamlit). `formula_lines` returns LaTeX strings for ``st.latex``; `SCENARIOS` are
one-click "predict, then reveal" lessons, each a data setting plus two configs to compare.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from explorer.core.pipeline import DataSettings
from explorer.core.yaml_edit import format_scalar, join_document
from quantlib.config_loader import load_config_from_string, section_to_yaml
from quantlib.quant_config import QuantConfig

OBSERVER_NOTES = {
    "MinmaxObserver": "Keeps the full observed range: nothing is clipped, but one outlier "
                      "stretches the step for everyone. Wins on bounded, outlier-free data.",
    "EmaMinmaxObserver": "Averages each batch's min/max, so one extreme batch moves the range "
                         "less. Wins when calibration batches vary.",
    "PercentileObserver": "Clips to the alpha quantile, ignoring the rarest values. Wins on "
                          "heavy tails; alpha too low clips real signal.",
    "OmseObserver": "Searches the clip range with the least mean squared error, trading "
                    "clipping error for rounding error. Wins at low bit widths.",
    "KLObserver": "Picks the threshold whose quantized histogram keeps the most information "
                  "(minimum KL divergence), as TensorRT does. Wins on peaked, long-tailed "
                  "activations.",
}


def _num(value: float) -> str:
    return f"{value:.6g}"


def aligned(*rows: str) -> str:
    """Short LaTeX rows stacked in one ``aligned`` block (``&`` marks the alignment point), so
    a formula wraps onto several lines instead of running past a narrow column."""
    return r"\begin{aligned}" + r" \\ ".join(rows) + r"\end{aligned}"


def formula_lines(config: QuantConfig, scale: torch.Tensor, zero_point: torch.Tensor,
                  range_min: torch.Tensor, range_max: torch.Tensor, channel: int = 0) -> dict:
    """The method's formulas with one channel's numbers filled in.

    ``scale``/``zero_point``/``range_min``/``range_max`` are [C] or [1]; ``channel`` picks the
    entry shown. Returns ``{"values": {...numbers...}, "latex": [lines]}``; the values are the
    layer's own qparams, so the panel shows exactly what the layer uses. Each line is an
    ``aligned`` block of short rows (one step or one number per row), so it fits a half-width
    column at 1024 px.
    """
    i = min(channel, scale.numel() - 1)
    bt = config.bit_type
    s, zp = float(scale.reshape(-1)[i]), int(zero_point.reshape(-1)[i])
    lo, hi = float(range_min.reshape(-1)[i]), float(range_max.reshape(-1)[i])
    min_neg, max_pos = min(lo, 0.0), max(hi, 0.0)
    values = {"qmin": bt.qmin, "qmax": bt.qmax, "range_min": lo, "range_max": hi, "scale": s,
              "zero_point": zp, "clip_lo": (bt.qmin - zp) * s, "clip_hi": (bt.qmax - zp) * s}
    kind = "signed" if bt.signed else "unsigned"
    latex = [aligned(rf"q_{{\min}} &= {bt.qmin}", rf"q_{{\max}} &= {bt.qmax}"
                     rf"\quad(\text{{{bt.bits}-bit {kind}}})"),
             aligned(rf"x_{{\min}} &= {_num(lo)}", rf"x_{{\max}} &= {_num(hi)}"
                     rf"\quad\text{{(observed)}}")]
    if config.is_symmetric:
        t = max(-min_neg, max_pos)
        latex.append(aligned(
            r"t &= \max(-x_{\min},\ x_{\max},\ 0)",
            rf"&= {_num(t)}",
            rf"s &= \frac{{t}}{{(q_{{\max}} - q_{{\min}})/2}}"
            rf" = \frac{{{_num(t)}}}{{{_num((bt.qmax - bt.qmin) / 2)}}}",
            rf"&= {_num(s)}"))
        rule = r"\text{signed: } z = 0" if bt.signed else r"\text{unsigned: } z = 2^{b-1}"
        latex.append(rf"z = {zp}\quad({rule})")  # math outside \text (KaTeX renders it)
    else:
        latex.append(aligned(
            rf"s &= \frac{{x_{{\max}}^{{+}} - x_{{\min}}^{{-}}}}{{q_{{\max}} - q_{{\min}}}}"
            rf" = \frac{{{_num(max_pos - min_neg)}}}{{{bt.qmax - bt.qmin}}}",
            rf"&= {_num(s)}",
            r"&\text{with } x^{+} = \max(x, 0),\ x^{-} = \min(x, 0)"))
        latex.append(aligned(
            r"z &= q_{\min} - \mathrm{round}\left(x_{\min}^{-} / s\right)",
            r"&\quad\text{(clamped to } [q_{\min}, q_{\max}]\text{)}",
            rf"&= {zp}"))
    latex.append(aligned(r"q &= \mathrm{round}\left(x \cdot \tfrac{1}{s}\right) + z",
                         r"q &\leftarrow \mathrm{clamp}(q,\ q_{\min},\ q_{\max})",
                         r"\hat{x} &= (q - z)\, s"))
    latex.append(aligned(
        r"\text{clip lo} &= (q_{\min} - z)\,s", rf"&= {_num(values['clip_lo'])}",
        r"\text{clip hi} &= (q_{\max} - z)\,s", rf"&= {_num(values['clip_hi'])}"))
    return {"values": values, "latex": latex}


@dataclass(frozen=True)
class Scenario:
    """A lesson: data to load, configs A and B (one YAML document each), the question asked
    before running (``predict``) and the explanation shown after (``reveal``)."""

    title: str
    predict: str
    reveal: str
    settings: DataSettings
    config_a: str
    config_b: str
    label_a: str
    label_b: str


SECTION_KEYS = (("weight", "weight"), ("outputs", "output"), ("activation", "activation"))


def scenario_document(scenario: Scenario) -> str:
    """Config A of ``scenario`` as a full, commented YAML document for the editors: every
    field written out (`section_to_yaml`, so ``observer_type`` and friends are visible), a
    comment naming the scenario at the top, and each field that config B sets differently
    marked ``# B: <value>`` (the setting under test)."""
    configs_a = load_config_from_string(scenario.config_a)
    configs_b = load_config_from_string(scenario.config_b)
    bodies = {}
    for section, key in SECTION_KEYS:
        config = configs_a[key]
        if config is None:
            continue
        mine = config.to_dict()
        theirs = configs_b[key].to_dict() if configs_b[key] is not None else None
        lines = [] if bodies else [f"# Scenario: {scenario.title}",
                                   f"# This is config A ({scenario.label_a}); "
                                   f"B is {scenario.label_b}."]
        parent = ""
        for line in section_to_yaml(config).splitlines():
            field = line.strip().partition(":")[0]
            nested = line.startswith(" ")
            parent = parent if nested else field
            a_value = mine[parent][field] if nested else mine[field]
            b_value = None if theirs is None else (theirs[parent][field] if nested
                                                   else theirs[field])
            if theirs is not None and not isinstance(a_value, dict) and b_value != a_value:
                line += f"  # B: {format_scalar(b_value)}"
            lines.append(line)
        bodies[section] = "\n".join(lines) + "\n"
    return join_document(bodies)


def _doc(weight: str, outputs: str, activation: str | None = None) -> str:
    text = f"weight:\n{_indent(weight)}outputs:\n{_indent(outputs)}"
    return text + (f"activation:\n{_indent(activation)}" if activation else "")


def _indent(body: str) -> str:
    return "".join(f"  {line}\n" for line in body.strip().splitlines())


def _scenario_data(**source: str) -> DataSettings:
    """A 256x256 layer with 4 x 128 calibration rows: quick, and big enough to show it."""
    return DataSettings(out_features=256, in_features=256, num_batches=4, batch_size=128,
                        **source)


_W8_CHANNEL = "calibration_mode: channel_wise\nbit_type: {bits: 8, signed: true}"
_O8_TENSOR = "calibration_mode: layer_wise\nbit_type: {bits: 8, signed: true}\n" \
             "quantization_method: Affine"

SCENARIOS = {
    "outlier_channel": Scenario(
        title="An outlier channel: per-tensor vs per-channel weights",
        predict="A few output channels have weights 20-50x larger. Which loses more dB at "
                "8 bits: one scale for the whole weight, or one scale per output channel?",
        reveal="Per-tensor: the outlier rows set the single scale, so every ordinary row gets "
               "only a handful of levels and its QSNR collapses. Per-channel gives each row "
               "its own scale.",
        settings=_scenario_data(weight_source="Outlier channels"),
        config_a=_doc("calibration_mode: layer_wise\nbit_type: {bits: 8, signed: true}",
                      _O8_TENSOR),
        config_b=_doc(_W8_CHANNEL, _O8_TENSOR),
        label_a="per-tensor weight", label_b="per-channel weight"),
    "relu_unsigned": Scenario(
        title="One-sided ReLU inputs: signed vs unsigned activations",
        predict="The input activations come after a ReLU (all >= 0). With symmetric 8-bit "
                "quantization, how many of the 256 codes can they use if the codes are "
                "signed? And unsigned (with Affine)?",
        reveal="Signed symmetric wastes the negative half: about 128 codes, so about 6 dB "
               "lower QSNR. Unsigned Affine puts all 256 codes on [0, max].",
        settings=_scenario_data(input_source="ReLU-activated"),
        config_a=_doc(_W8_CHANNEL, _O8_TENSOR,
                      "bit_type: {bits: 8, signed: true}\nquantization_method: Uniform"),
        config_b=_doc(_W8_CHANNEL, _O8_TENSOR,
                      "bit_type: {bits: 8, signed: false}\nquantization_method: Affine"),
        label_a="signed symmetric input", label_b="unsigned affine input"),
    "heavy_tails": Scenario(
        title="Heavy-tailed weights: MinMax vs Percentile at 4 bits",
        predict="Student-t weights have rare huge values. At 4 bits, does clipping the top "
                "0.1% help or hurt?",
        reveal="It helps: MinMax spends its 16 levels on values that almost never occur. "
               "Percentile clips them and the common values get a finer step.",
        settings=_scenario_data(weight_source="Student-t heavy tails"),
        config_a=_doc("bit_type: {bits: 4, signed: true}\nobserver_type: MinmaxObserver",
                      _O8_TENSOR),
        config_b=_doc("bit_type: {bits: 4, signed: true}\nobserver_type: PercentileObserver"
                      "\npercentile_alpha: 0.999", _O8_TENSOR),
        label_a="MinMax 4-bit", label_b="Percentile 99.9% 4-bit"),
    "omse_4bit": Scenario(
        title="4-bit weights: MinMax vs OMSE",
        predict="At 4 bits, is the best clip range the full range?",
        reveal="No: OMSE finds a range inside max|w| where clipping error and rounding "
               "error balance: about 1 dB better than MinMax here, on Gaussian weights, and "
               "more on heavier tails.",
        settings=_scenario_data(weight_source="Gaussian"),
        config_a=_doc("calibration_mode: channel_wise\nbit_type: {bits: 4, signed: true}\n"
                      "observer_type: MinmaxObserver", _O8_TENSOR),
        config_b=_doc("calibration_mode: channel_wise\nbit_type: {bits: 4, signed: true}\n"
                      "observer_type: OmseObserver", _O8_TENSOR),
        label_a="MinMax 4-bit", label_b="OMSE 4-bit"),
    "llm_outlier_feature": Scenario(
        title="An LLM-like outlier feature in the input activation",
        predict="A few input features are 20-100x larger than the rest, as in LLMs. With "
                "per-tensor 8-bit input quantization, what happens to the other features? "
                "Does per-channel (per input feature) fix it?",
        reveal="Per-tensor: the outlier features set the scale and the ordinary features "
               "round to a few levels, so the input QSNR drops sharply. One scale per input "
               "feature isolates the outliers (SmoothQuant and LLM.int8() exploit this).",
        settings=_scenario_data(input_source="LLM-like outlier features"),
        config_a=_doc(_W8_CHANNEL, _O8_TENSOR,
                      "calibration_mode: layer_wise\nbit_type: {bits: 8, signed: true}"),
        config_b=_doc(_W8_CHANNEL, _O8_TENSOR,
                      "calibration_mode: channel_wise\nbit_type: {bits: 8, signed: true}"),
        label_a="per-tensor input", label_b="per-feature input"),
    "mxfp4_vs_nvfp4": Scenario(
        title="Outlier blocks: why MXFP4 loses to NVFP4",
        predict="Heavy-tailed weights put a rare large value in some blocks. Both formats "
                "store E2M1 elements (4 bits). MXFP4 shares a power-of-two scale per 32 "
                "values; NVFP4 an E4M3 scale per 16 plus one fp32 scale. Which keeps more "
                "dB, and why?",
        reveal="NVFP4. A power-of-two scale can only move in steps of 2x, so a block's amax "
               "lands anywhere in the top octave of the grid and up to half of E2M1's range "
               "goes unused; an outlier makes it worse, since all 32 values share it. NVFP4's "
               "E4M3 scale fits amax / 6 to within ~6 %, and 16-value blocks confine an "
               "outlier to half as many neighbours. Follow a weight of an outlier block in "
               "section 2 to see its scale and element.",
        settings=_scenario_data(weight_source="Student-t heavy tails"),
        config_a=_doc("calibration_mode: block_wise\nblock_size: 32\nbit_type: {name: mxfp4}",
                      _O8_TENSOR),
        config_b=_doc("calibration_mode: block_wise\nblock_size: 16\nbit_type: {name: nvfp4}",
                      _O8_TENSOR),
        label_a="MXFP4 weights", label_b="NVFP4 weights"),
}
