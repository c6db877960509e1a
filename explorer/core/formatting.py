"""Text shared by every panel (pure): metric cards, config errors, the Plotly chart config."""

from __future__ import annotations

import math

from quantlib.errors import ConfigError

CHART_CONFIG = {"displaylogo": False}  # st.plotly_chart's config for every figure


def format_qsnr(value: float | None) -> str:
    """QSNR in dB for a metric card; +inf is lossless, never NaN."""
    if value is None or math.isnan(value):
        return "n/a"
    if value == math.inf:
        return "∞ dB (lossless)"
    if value == -math.inf:
        return "−∞ dB (all-zero signal)"
    return f"{value:.2f} dB"


def format_metric(name: str, value: float | None) -> str:
    """A metric card's text: MSE, cosine similarity, clip % or compression ratio."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if name == "mse":
        return f"{value:.3e}"
    if name == "cosine_similarity":
        return f"{value:.6f}"
    if name == "clip_fraction":
        return f"{100 * value:.3f} %"
    if name == "compression_ratio":
        return f"{value:.2f}×"
    return f"{value:.4g}"


def format_config_error(err: ConfigError) -> str:
    """``weight.bit_type.bits`` (line 3): must be ... — for the inline error box."""
    where = f"`{err.path}`" if err.path else "YAML"
    line = f" (line {err.line})" if err.line is not None else ""
    return f"**{where}**{line}: {err.reason}"


def is_no_change(value: float, digits: int) -> bool:
    """True when ``value`` rounds to zero at ``digits`` decimals (shows as 0.0…0)."""
    return abs(value) < 0.5 * 10.0 ** -digits


def format_fixed(value: float, digits: int = 2) -> str:
    """``value`` with ``digits`` decimals, never a negative zero: -0.001 -> "0.00"."""
    return f"{0.0 if is_no_change(value, digits) else value:.{digits}f}"


def format_change(value: float, digits: int = 1, unit: str = "") -> str:
    """A signed change for a metric card's delta: "+1.2 pp", "-0.3 dB"; a change that rounds
    to zero at this precision is "0.0 pp" (no sign: no change)."""
    suffix = f" {unit}" if unit else ""
    if is_no_change(value, digits):
        return f"{0.0:.{digits}f}{suffix}"
    return f"{value:+.{digits}f}{suffix}"


def delta_style(value: float, digits: int = 1) -> dict:
    """``st.metric`` keyword arguments for a delta of ``value``: grey and arrowless when it
    rounds to zero (no change), Streamlit's default colours otherwise."""
    if is_no_change(value, digits):
        return {"delta_color": "off", "delta_arrow": "off"}
    return {}
