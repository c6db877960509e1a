"""The HTML report's building blocks (pure, no Streamlit): readable tables with units, the
figures' compact JSON and plotly.js, gzipped for embedding, and the loader script that
unzips them in the browser (DecompressionStream: no network, works offline).
`explorer.share.report.build_report_html` puts them together."""

from __future__ import annotations

import base64
import dataclasses
import functools
import gzip
import html
import json
import math
from collections.abc import Mapping

import numpy as np
from plotly.offline import get_plotlyjs

from explorer.core.formatting import format_fixed
from explorer.core.pipeline import DataSettings
from explorer.core.plotly_bundle import (
    CARTESIAN_BUNDLE,
    CARTESIAN_TRACES,
    cartesian_bundle_matches,
)

# Readable metric columns: (label with unit, how a value is shown). The raw key stays under
# each label in small type: it is the column name of the JSON/CSV exports.
METRIC_LABELS = {
    "tensor": ("tensor", str), "observer": ("observer", str), "bits": ("bits", str),
    "signed": ("signed", str), "method": ("method", str), "granularity": ("granularity", str),
    "qsnr": ("QSNR (dB)", lambda v: cell(v, "{:.2f}")),
    "mse": ("MSE", lambda v: cell(v, "{:.3e}")),
    "mae": ("mean |error|", lambda v: cell(v, "{:.3e}")),
    "max_abs_error": ("max |error|", lambda v: cell(v, "{:.3e}")),
    "cosine_similarity": ("cosine similarity", lambda v: cell(v, "{:.6f}")),
    "clip_fraction": ("clipped (%)", lambda v: cell(None if v is None else 100 * v, "{:.3f}")),
    "num_elements": ("values", lambda v: cell(v, "{:,}")),
    "compression_ratio": ("compression (×)", lambda v: cell(v, "{:.2f}")),
}
SETTING_LABELS = {
    "source": ("Sample source", ""), "in_features": ("In features", ""),
    "out_features": ("Out features", ""), "seed": ("Seed", ""),
    "weight_source": ("Weight source", ""), "input_source": ("Calibration input", ""),
    "num_batches": ("Calibration batches", ""), "batch_size": ("Batch size", "rows"),
    "model_layer": ("Digits MLP layer", ""), "minilm_layer": ("MiniLM layer", ""),
    "upload_weight": ("Uploaded weight (digest)", ""),
    "upload_tensor": ("Uploaded tensor name", ""),
    "upload_inputs": ("Uploaded inputs (digest)", ""),
}
SOURCE_ONLY = {"model_layer": "digits", "minilm_layer": "minilm"}
FIGURE_HEIGHT_PX = 420
MANTISSA_BITS_KEPT = 10  # float data of the figures keeps ~3 significant digits (hover)
REPORT_CSS = """
*{box-sizing:border-box} body{font-family:system-ui,sans-serif;margin:0 auto;padding:16px;
max-width:1200px;line-height:1.4;color:#222} h1{font-size:1.6em} h2{margin-top:1.6em}
.scroll{overflow-x:auto;max-width:100%} table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right;vertical-align:top}
th{background:#f3f3f3} th small{display:block;font-weight:normal;color:#888}
td.l,th.l{text-align:left} pre{background:#f6f6f6;padding:8px;white-space:pre-wrap;
word-break:break-word;max-width:100%} .figure{width:100%;min-height:420px}
.note{color:#555;font-size:.9em}
"""
# Unzips plotly.js and the figures (gzip + base64, to keep the file small) with the browser's
# own DecompressionStream: nothing is fetched, so the report works offline.
LOADER_JS = """
async function unzipText(id) {
  const text = document.getElementById(id).textContent.trim();
  const bytes = Uint8Array.from(atob(text), c => c.charCodeAt(0));
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return await new Response(stream).text();
}
async function drawReport() {
  if (typeof DecompressionStream === "undefined") {
    document.getElementById("status").textContent =
      "This report needs a browser from 2023 or later (DecompressionStream) to draw its plots.";
    return;
  }
  const lib = document.createElement("script");
  lib.textContent = await unzipText("plotlyjs-gz");
  document.head.appendChild(lib);
  const F = JSON.parse(await unzipText("figures-gz"));
  const CONFIG = {responsive: true, displaylogo: false};
  for (const fig of F.figures) { fig.layout.template = F.template; }
  DRAW
  document.getElementById("status").remove();
}
drawReport();
"""


def plotly_js_gzip_b64(trace_types: frozenset[str] = frozenset()) -> str:
    """plotly.js, gzipped and base64-encoded: the cartesian bundle when it draws every one of
    ``trace_types`` and matches the installed plotly's plotly.js version, else the full one."""
    if trace_types <= CARTESIAN_TRACES and cartesian_bundle_matches():
        return _cartesian_gzip_b64()
    return _full_gzip_b64()


@functools.lru_cache(maxsize=1)
def _cartesian_gzip_b64() -> str:
    return base64.b64encode(CARTESIAN_BUNDLE.read_bytes()).decode("ascii")


@functools.lru_cache(maxsize=1)
def _full_gzip_b64() -> str:
    return gzip_b64(get_plotlyjs().encode())


def gzip_b64(data: bytes) -> str:
    return base64.b64encode(gzip.compress(data, compresslevel=9, mtime=0)).decode("ascii")


def figures_payload(figures: list) -> tuple[dict, list[dict]]:
    """(the template, shared once; each figure as JSON without its template, no fixed width,
    float arrays rounded to ~4 significant digits as float32)."""
    template: dict = {}
    out = []
    for fig in figures:
        spec = json.loads(fig.to_json())
        template = spec["layout"].pop("template", template)
        spec["layout"].pop("width", None)
        spec["layout"].setdefault("height", FIGURE_HEIGHT_PX)
        spec["layout"]["autosize"] = True
        out.append(compact(spec))
    return template, out


def compact(node):
    """``node`` with every float array (plotly's ``{"dtype": "f8", "bdata": ...}`` or a list
    of float rows, e.g. a heatmap's z) stored as float32 bdata with its low mantissa bits
    cleared (about 4 significant digits, and it compresses well); other floats rounded."""
    if isinstance(node, dict):
        if node.get("dtype") in ("f8", "f4") and "bdata" in node:
            values = np.frombuffer(base64.b64decode(node["bdata"]),
                                   dtype=np.float64 if node["dtype"] == "f8" else np.float32)
            return {**node, **f4_bdata(values)}
        return {key: compact(value) for key, value in node.items()}
    if isinstance(node, list):
        if node and all(isinstance(row, list) and row and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in row)
                for row in node) and len({len(row) for row in node}) == 1:
            values = np.asarray(node, dtype=np.float64)
            return {**f4_bdata(values.reshape(-1)), "shape": f"{values.shape[0]}, "
                                                              f"{values.shape[1]}"}
        return [compact(value) for value in node]
    if isinstance(node, float) and math.isfinite(node) and node != 0.0:
        return float(f"{node:.5g}")
    return node


def f4_bdata(values: np.ndarray) -> dict:
    bits = values.astype(np.float32).view(np.uint32)
    bits = bits & np.uint32(~((1 << (23 - MANTISSA_BITS_KEPT)) - 1) & 0xFFFFFFFF)
    return {"dtype": "f4", "bdata": base64.b64encode(bits.tobytes()).decode("ascii")}


TEXT_COLUMNS = frozenset({"tensor", "observer", "method", "granularity"})  # left-aligned


def align(key: str) -> str:
    return ' class="l"' if key in TEXT_COLUMNS else ""


def header(key: str, label: str) -> str:
    return f"<th{align(key)}>{html.escape(label)}<small>{html.escape(key)}</small></th>"


def settings_table_html(settings: DataSettings) -> str:
    """The sample-data settings as a two-column table (label, value), leaving out what does
    not apply (the upload fields when empty, a real model's layer for another source)."""
    rows = []
    for key, value in dataclasses.asdict(settings).items():
        if value in ("", None) or SOURCE_ONLY.get(key, settings.source) != settings.source:
            continue
        label, unit = SETTING_LABELS.get(key, (key.replace("_", " "), ""))
        text = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) \
            else str(value)
        rows.append(f'<tr><th class="l">{html.escape(label)}</th>'
                    f'<td class="l">{html.escape(text)}{" " + unit if unit else ""}</td></tr>')
    return f'<div class="scroll"><table>{"".join(rows)}</table></div>'


def frame_html(frame, index_label: str) -> str:
    """A pandas table as HTML (its column names already carry their units)."""
    head = f'<th class="l">{html.escape(index_label)}</th>' + "".join(
        f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        f'<tr><td class="l">{html.escape(str(index))}</td>'
        + "".join(f"<td>{html.escape(cell(v))}</td>" for v in row) + "</tr>"
        for index, row in zip(frame.index, frame.itertuples(index=False)))
    return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'


def model_summary_html(model) -> str:
    from explorer.model.summary import format_accuracy, layer_table

    table = layer_table(model)
    head = "".join(f"<th>{html.escape(k)}</th>" for k in table[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell(v))}</td>" for v in row.values())
                   + "</tr>" for row in table)
    drop = 100 * model.accuracy_drop
    return (f"<p>Top-1 accuracy on {model.num_eval_rows} held-out images: fp32 "
            f"{format_accuracy(model.fp32_accuracy)}, quantized "
            f"{format_accuracy(model.quantized_accuracy)} (a drop of "
            f"{format_fixed(drop, 1)} pp: percentage points). Calibrated on "
            f"{model.num_calibration_rows} rows; seed {model.seed}.</p>"
            f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>')


def compare_html(runs: Mapping) -> str:
    from explorer.compare.tables import lost_table, metrics_table

    return ("<h3>Metrics per config</h3>" + frame_html(metrics_table(runs), "config")
            + "<h3>Each config at its own bit widths</h3>"
            + frame_html(lost_table(runs), "config")
            + '<p class="note">QSNR, MSE and clipped % on the held-out batch; ideal = '
              "20·log10(2^b − 1) dB, the ideal uniform quantizer.</p>")


def compare_figures(runs: Mapping, sweeps: Mapping | None) -> list:
    from explorer.compare import figures as CF
    from explorer.compare.runs import TENSORS

    colors = CF.config_colors(runs)
    per_channel = {name: {t: run.tensors[t].per_channel_qsnr for t in TENSORS}
                   for name, run in runs.items()}
    out = [CF.make_channels_figure(per_channel, colors)]
    if sweeps:
        chosen = {name: {t: runs[name].tensors[t].config.bit_type.bits for t in TENSORS}
                  for name in sweeps if name in runs}
        out.append(CF.make_sweep_figure({n: s for n, s in sweeps.items() if n in chosen},
                                        chosen, {n: colors[n] for n in chosen}))
    return out


def cell(value, spec: str = "{:.6g}") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if math.isinf(value):
            return "∞ (lossless)" if value > 0 else "-∞"
        return spec.format(value)
    if isinstance(value, int) and not isinstance(value, bool) and spec == "{:,}":
        return spec.format(value)
    return str(value)


