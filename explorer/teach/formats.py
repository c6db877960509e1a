"""One value through a block-scaled or float format, with the layer's numbers (pure, no
Streamlit): block amax -> shared scale (E8M0 exponent for MX, E4M3 block scale x FP32 tensor
scale for NVFP4, amax / max_finite for FP8) -> x / scale -> nearest element -> dequant.

`block_trace` adds what the block (or channel) holds to `quantlib.analysis.follow_value`'s
chain; `float_chain_lines` writes the chain as short LaTeX rows for ``st.latex``.
"""

from __future__ import annotations

import math
from functools import partial

from explorer.teach.lessons import aligned

E2M1_NAME = {"mx": "element", "nvfp4": "E2M1", "fp8": "FP8"}


def block_trace(view, row: int, col: int) -> dict:
    """The scale group of weight ``[row, col]`` in ``view`` (a `analysis.TensorView` of the
    weight [out, in]): ``group`` ("block", "channel" or "tensor"), ``group_start`` /
    ``group_end`` (its columns, end exclusive), ``group_amax`` (max |w| over it, what a block
    scale is computed from) and ``tensor_amax`` (max |w| of the whole weight)."""
    values = view.values
    if view.block_size is not None:
        start = (col // view.block_size) * view.block_size
        end = start + view.block_size
        group, span = "block", values[row, start:end]
    elif view.num_channels > 1:
        start, end, group, span = 0, values.shape[1], "channel", values[row]
    else:
        start, end, group, span = 0, values.shape[1], "tensor", values
    return {"group": group, "group_start": start, "group_end": end,
            "group_amax": float(span.abs().max()), "tensor_amax": float(values.abs().max())}


def latex_number(value: float, digits: int = 9) -> str:
    """``value`` with ``digits`` significant digits, exponents as ×10^k (LaTeX)."""
    text = f"{value:.{digits}g}"
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    return rf"{mantissa} \times 10^{{{int(exponent)}}}"


_n = partial(latex_number, digits=6)  # the float chains' numbers


def float_chain_lines(chain: dict, bit_type, tensor_scale: float | None = None) -> list[str]:
    """LaTeX rows for a float (or MX) format's chain: the group's amax, how the scale follows
    from it, x / s, the nearest element, x̂ and the error. ``chain`` is `follow_weight`'s
    output (with `block_trace`'s keys)."""
    spec = bit_type.format
    r, c = chain["row"], chain["col"]
    s, x = chain["scale"], chain["x"]
    top = spec.max_finite
    span = (rf"w[{r}, {chain['group_start']}{{:}}{chain['group_end']}]"
            if chain["group"] == "block" else
            (rf"w[{r}, :]" if chain["group"] == "channel" else "w"))
    lines = [aligned(rf"x &= w[{r}, {c}] = {_n(x)}",
                     rf"\text{{amax}} &= \max|{span}| = {_n(chain['group_amax'])}")]
    if bit_type.family == "mx":
        k = int(round(math.log2(s))) if s > 0 else 0
        emax = int(math.floor(math.log2(top))) if top > 0 else 0
        lines.append(aligned(
            rf"k &= \lfloor\log_2 \text{{amax}}\rfloor - {emax} = {k}"
            r"\quad(\text{E8M0 exponent})",
            rf"s &= 2^{{{k}}} = {_n(s)}"))
        unit = s
    elif bit_type.family == "nvfp4":
        ts = tensor_scale if tensor_scale is not None else 1.0
        lines.append(aligned(
            rf"s_T &= \frac{{\text{{amax}}_{{\text{{tensor}}}}}}{{448 \cdot 6}} = {_n(ts)}"
            r"\quad(\text{FP32})",
            rf"s_B &= \mathrm{{E4M3}}\!\left(\frac{{\text{{amax}}}}{{6\, s_T}}\right) = {_n(s)}",
            rf"s &= s_B\, s_T = {_n(s * ts)}"))
        unit = s * ts
    else:
        lines.append(aligned(rf"s &= \frac{{\text{{amax}}}}{{{_n(top)}}} = {_n(s)}"
                             r"\quad(\text{observer's range} / \text{max finite})"))
        unit = s
    element = "E2M1" if spec.element_bits == 4 and spec.element is not None else (
        "INT8 (1.6 fixed point)" if spec.element is None else bit_type.name.upper())
    lines.append(aligned(
        rf"x / s &= {_n(x)} / {_n(unit)} = {_n(chain['scaled'])}",
        rf"e &= \text{{nearest {element}}} = {_n(chain['element'])}"
        + (r"\quad(\text{saturated})" if chain["clamped"] else ""),
        rf"q &= {chain['code']}\quad(\text{{grid index}})"))
    lines.append(aligned(rf"\hat{{x}} &= e \cdot s = {_n(chain['element'])} \times {_n(unit)}",
                         rf"&= {_n(chain['dequantized'])}",
                         rf"\text{{error}} &= \hat{{x}} - x = {_n(chain['error'])}"))
    return lines


SCALE_RULES = {
    "mx": (r"s = 2^{\lfloor \log_2 \text{amax}_{\text{block}} \rfloor - e_{\max}}"
           r"\quad(\text{E8M0: a power of two per block})"),
    "nvfp4": (r"s = \mathrm{E4M3}\!\left(\tfrac{\text{amax}_{\text{block}}}{6\, s_T}\right)"
              r"\cdot s_T,\quad s_T = \tfrac{\text{amax}_{\text{tensor}}}{448 \cdot 6}"),
    "fp8": r"s = \text{amax} / \text{max finite}\quad(\text{fp32})",
}


def float_format_lines(config, scale: float, tensor_scale: float | None = None) -> list[str]:
    """The formulas of a float (or MX) format with one scale's number: the element grid,
    how the scale is chosen, and quantize/dequantize."""
    bt = config.bit_type
    spec = bt.format
    where = (f"{config.block_size} values" if config.is_block_wise
             else "channel" if config.is_channel_wise else "tensor")
    unit = scale * (tensor_scale if tensor_scale is not None else 1.0)
    return [
        aligned(rf"\text{{format}} &= \text{{{bt.name}}},\ {spec.element_bits}\text{{-bit "
                r"elements}", rf"\text{{max finite}} &= {_n(spec.max_finite)}",
                rf"\text{{levels}} &= {bt.num_levels}\quad(\text{{non-uniform}})"),
        aligned(rf"&{SCALE_RULES.get(bt.family, SCALE_RULES['fp8'])}",
                rf"&\text{{one scale per {where}; this one: }} s = {_n(unit)}"),
        aligned(r"e &= \text{nearest element}(x / s)\quad(\text{ties to even, saturating})",
                r"\hat{x} &= e \cdot s"),
    ]
