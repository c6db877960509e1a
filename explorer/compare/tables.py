"""The compare view's tables (pure pandas, no Streamlit): metrics per config, each config's
dB below the ideal line, and which config is best per column. Shared by the Compare tab and
the HTML report."""

from __future__ import annotations

import math

import pandas as pd

from explorer.compare import runs as C
from explorer.core.formatting import format_fixed

HIGHER_IS_BETTER = ("Weight QSNR (dB)", "Output QSNR (dB)")
LOWER_IS_BETTER = ("Weight MSE", "Output MSE", "Weight clipped (%)", "Output clipped (%)",
                   "Observer (ms)", "Calibration (ms)")
TENSOR_TITLES = {"weight": "Weight", "output": "Output"}


def metrics_table(runs: dict[str, C.ConfigRun]) -> pd.DataFrame:
    """One row per config: observers, QSNR, MSE, clipped %, observer and calibration time."""
    rows = []
    for run in runs.values():
        w, o = run.tensors["weight"], run.tensors["output"]
        rows.append({
            "Weight observer": w.config.observer_type,
            "Output observer": o.config.observer_type,
            "Weight QSNR (dB)": w.qsnr, "Output QSNR (dB)": o.qsnr,
            "Weight MSE": w.mse, "Output MSE": o.mse,
            "Weight clipped (%)": 100 * w.clip_fraction,
            "Output clipped (%)": 100 * o.clip_fraction,
            "Observer (ms)": run.observer_ms, "Calibration (ms)": run.calibration_ms,
        })
    return pd.DataFrame(rows, index=pd.Index(list(runs), name="config"))


def best_rows(table: pd.DataFrame) -> dict[str, list[str]]:
    """The config(s) holding each metric column's best value (ties all win)."""
    best = {}
    for column in (*HIGHER_IS_BETTER, *LOWER_IS_BETTER):
        values = table[column].astype(float)
        target = values.max() if column in HIGHER_IS_BETTER else values.min()
        best[column] = [] if math.isnan(target) else list(values.index[values == target])
    return best


def lost_table(runs: dict[str, C.ConfigRun]) -> pd.DataFrame:
    """Each config at its own widths: bits, bits per element (scales included), QSNR, the
    ideal line there and the dB lost (a loss that rounds to 0.00 shows as 0.00, never -0.00;
    "n/a" for float formats, whose grid is not uniform)."""
    rows = []
    for run in runs.values():
        lost = C.db_lost(run)
        row = {}
        for tensor in C.TENSORS:
            t = run.tensors[tensor]
            title = TENSOR_TITLES[tensor]
            bits = t.config.bit_type.bits
            row[f"{title} bits"] = bits
            row[f"{title} bits/element"] = f"{t.bits_per_element:.3f}"
            row[f"{title} QSNR (dB)"] = format_db(t.qsnr)
            row[f"{title} ideal (dB)"] = ("n/a" if t.config.bit_type.is_float
                                          else f"{C.ideal_qsnr(bits):.2f}")
            row[f"{title} dB below ideal"] = format_db(lost[tensor])
        rows.append(row)
    return pd.DataFrame(rows, index=pd.Index(list(runs), name="config"))


def format_db(value: float) -> str:
    """dB with 2 decimals for a table cell: "∞ (lossless)", "−∞", "n/a", never "-0.00"."""
    if value == math.inf:
        return "∞ (lossless)"
    if value == -math.inf:
        return "−∞"
    return "n/a" if math.isnan(value) else format_fixed(value, 2)
