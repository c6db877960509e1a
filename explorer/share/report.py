"""Standalone exports of one explorer run: an HTML report, metrics as JSON/CSV, and a CLI.

    python -m explorer.report --config configs/attn_config.yaml -o report.html

The HTML embeds plotly.js once, so its figures stay interactive with no server.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import html
import io
import json
import math
import os
import stat
import sys
from pathlib import Path

from explorer.core.pipeline import DataSettings, PipelineResult, build_figures, run_pipeline
from explorer.data import synthetic
from explorer.data.digits import LINEAR_NAMES
from explorer.data.sources import make_sample_data
from quantlib.config_loader import MAX_CONFIG_BYTES, ConfigError, load_config_from_yaml

# DataSettings fields that only the app can fill: the digests and tensor name of files
# uploaded in a browser session. The CLI has no uploads, so it offers no flag for them.
APP_ONLY_SETTINGS = frozenset({"upload_weight", "upload_tensor", "upload_inputs"})

METRICS = ("qsnr", "mse", "mae", "max_abs_error", "cosine_similarity", "clip_fraction",
           "num_elements")


def metrics_rows(result: PipelineResult) -> list[dict]:
    """One flat row per tensor: statistics, compression ratio and config summary."""
    rows = []
    for name, tensor in result.tensors.items():
        stats = tensor.statistics or {}
        cfg = tensor.config
        row = {"tensor": name, "observer": cfg.observer_type, "bits": cfg.bit_type.bits,
               "signed": cfg.bit_type.signed, "method": cfg.quantization_method,
               "granularity": cfg.calibration_mode}
        row.update({key: stats.get(key) for key in METRICS})
        row["compression_ratio"] = tensor.memory.get("compression_ratio")
        rows.append(row)
    return rows


def metrics_to_json(result: PipelineResult) -> str:
    """Metrics as JSON; +inf QSNR is written as the string "inf" (JSON has no infinity)."""
    rows = [{k: _json_number(v) for k, v in row.items()} for row in metrics_rows(result)]
    return json.dumps({"settings": dataclasses.asdict(result.settings), "tensors": rows},
                      indent=2)


def metrics_to_csv(result: PipelineResult) -> str:
    rows = metrics_rows(result)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def build_report_html(result: PipelineResult, yaml_text: str, title: str = "",
                      figures: dict | None = None) -> str:
    """A self-contained HTML page: metrics table, every figure (interactive) and the YAML.
    ``figures`` are `build_figures(result)` when the caller already has them."""
    figures = build_figures(result) if figures is None else figures
    parts = []
    for index, fig in enumerate(figures.values()):
        parts.append(fig.to_html(full_html=False, include_plotlyjs="inline" if index == 0
                                 else False, default_height="420px"))
    rows = metrics_rows(result)
    header = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row.values())
                   + "</tr>" for row in rows)
    settings = html.escape(json.dumps(dataclasses.asdict(result.settings)))
    heading = html.escape(title or "Quantization report")
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{heading}</title>
<style>body{{font-family:sans-serif;margin:24px}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}} pre{{background:#f6f6f6;
padding:8px}}</style></head><body>
<h1>{heading}</h1>
<h2>Metrics</h2><table><tr>{header}</tr>{body}</table>
<h2>Configuration</h2><pre>{html.escape(yaml_text)}</pre>
<p>Sample data: <code>{settings}</code></p>
<h2>Figures</h2>
{"".join(f'<div class="figure">{p}</div>' for p in parts)}
</body></html>
"""


def _cell(value) -> str:
    if isinstance(value, float):
        if math.isinf(value):
            return "∞ (lossless)" if value > 0 else "-∞"
        return f"{value:.6g}"
    return str(value)


def _json_number(value):
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
    return value


def read_config_text(path: Path) -> str:
    """The text of a config file `load_config_from_yaml` has just accepted, for the report.

    Opened non-blocking and checked again on the open file (a FIFO or device swapped in after
    loading cannot hang the CLI), and read with the loader's size cap.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise ConfigError(f"cannot read config file {str(path)!r}: not a regular file")
        data = file.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"the config file {str(path)!r} grew over {MAX_CONFIG_BYTES:,} bytes")
    return data.decode("utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m explorer.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, type=Path, help="YAML config file")
    parser.add_argument("-o", "--output", required=True, type=Path, help="report .html path")
    parser.add_argument("--metrics", type=Path, help="also write metrics (.json or .csv)")
    defaults = DataSettings()
    for field in dataclasses.fields(DataSettings):
        if field.name in APP_ONLY_SETTINGS:
            continue
        flag = "--" + field.name.replace("_", "-")
        choices = {"weight_source": synthetic.WEIGHT_SOURCES,
                   "input_source": synthetic.INPUT_SOURCES,
                   "source": ("synthetic", "digits", "minilm"),  # uploads need the app
                   "model_layer": LINEAR_NAMES}.get(field.name)
        parser.add_argument(flag, type=type(getattr(defaults, field.name)), choices=choices,
                            default=getattr(defaults, field.name))
    args = parser.parse_args(argv)
    try:
        configs = load_config_from_yaml(args.config)  # regular files only, bounded read
        yaml_text = read_config_text(args.config)  # the report shows the text as written
        settings = DataSettings(**{f.name: getattr(args, f.name)
                                   for f in dataclasses.fields(DataSettings)
                                   if f.name not in APP_ONLY_SETTINGS})
        result = run_pipeline(configs, make_sample_data(settings),
                              progress=lambda f, text: print(f"[{f:4.0%}] {text}",
                                                             file=sys.stderr))
    except (OSError, UnicodeDecodeError) as err:
        print(f"error: cannot read {args.config}: {err}", file=sys.stderr)
        return 2
    except ValueError as err:  # ConfigError and sample-data validation
        print(f"error: {err}", file=sys.stderr)
        return 2
    args.output.write_text(build_report_html(result, yaml_text, f"Report: {args.config.name}"),
                           encoding="utf-8")
    if args.metrics is not None:
        text = metrics_to_csv(result) if args.metrics.suffix == ".csv" else \
            metrics_to_json(result)
        args.metrics.write_text(text, encoding="utf-8")
    for row in metrics_rows(result):
        print(f"{row['tensor']:>10}: QSNR {_cell(row['qsnr'])} dB, "
              f"clip {_cell(100 * (row['clip_fraction'] or 0))}%")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
