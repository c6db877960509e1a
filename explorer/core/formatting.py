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
