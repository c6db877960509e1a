"""Standalone exports of one explorer run: an HTML report, metrics as JSON/CSV, and a CLI.

    python -m explorer.report --config configs/attn_config.yaml -o report.html

The HTML embeds plotly.js once (gzipped), so its figures stay interactive with no server and
no network.
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
import tempfile
from collections.abc import Mapping
from pathlib import Path

from explorer.core.pipeline import DataSettings, PipelineResult, build_figures, run_pipeline
from explorer.data import synthetic
from explorer.data.digits import LINEAR_NAMES
from explorer.data.sources import make_sample_data
from explorer.share.report_html import (
    LOADER_JS,
    METRIC_LABELS,
    REPORT_CSS,
    align,
    compare_figures,
    compare_html,
    figures_payload,
    gzip_b64,
    header,
    model_summary_html,
    plotly_js_gzip_b64,
    settings_table_html,
)
from explorer.share.report_html import cell as _cell
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
                      figures: dict | None = None, compare_runs: Mapping | None = None,
                      compare_sweeps: Mapping | None = None, model=None) -> str:
    """A self-contained HTML page: the metrics (labels with units), the sample-data settings
    as a table, the YAML, every figure (interactive) and, when given, the Compare tab's
    results (``compare_runs``: name -> `ConfigRun`, ``compare_sweeps``: name -> `Sweep`) and
    the Whole model tab's (``model``: a `WholeModelSummary`).

    ``figures`` are `build_figures(result)` when the caller already has them. plotly.js (its
    cartesian bundle, or the full one if a figure needs more) is embedded once, gzipped, with
    the figures' data (float data kept to about 4 significant digits); the page fits the
    viewport (tables scroll inside their box, figures are responsive). No CDN: it works
    offline.
    """
    figures = build_figures(result) if figures is None else figures
    heading = html.escape(title or "Quantization report")
    shown: list[tuple[str, object]] = []  # (section, figure), in page order
    body = [f"<h1>{heading}</h1>", '<p id="status" class="note">Drawing the plots…</p>',
            "<h2>Single layer: metrics</h2>", _metrics_table_html(result),
            "<h2>Sample data</h2>", settings_table_html(result.settings),
            "<h2>Configuration</h2>", f"<pre>{html.escape(yaml_text)}</pre>",
            "<h2>Single layer: figures</h2>", "SLOT:single"]
    shown += [("single", fig) for fig in figures.values()]
    if model is not None:
        body += ["<h2>Whole model (digits MLP)</h2>", model_summary_html(model), "SLOT:model"]
        from explorer.model import summary as model_view
        shown.append(("model", model_view.make_layer_qsnr_figure(model)))
        if model.sensitivity:
            shown.append(("model", model_view.make_sensitivity_figure(model)))
    if compare_runs:
        body += ["<h2>Compare</h2>", compare_html(compare_runs), "SLOT:compare"]
        shown += [("compare", fig) for fig in compare_figures(compare_runs, compare_sweeps)]
    divs: dict[str, list[str]] = {}
    for index, (section, _) in enumerate(shown):
        divs.setdefault(section, []).append(f'<div class="figure" id="fig-{index}"></div>')
    page_body = "\n".join("\n".join(divs.get(part[5:], [])) if part.startswith("SLOT:")
                          else part for part in body)
    template, payload = figures_payload([fig for _, fig in shown])
    draw = "\n  ".join(f'Plotly.newPlot("fig-{i}", F.figures[{i}].data, F.figures[{i}].layout, '
                       "CONFIG);" for i in range(len(shown)))
    data = json.dumps({"template": template, "figures": payload}, separators=(",", ":"))
    traces = frozenset(trace.get("type", "scatter") for fig in payload for trace in fig["data"])
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{heading}</title><style>{REPORT_CSS}</style></head><body>
{page_body}
<script id="plotlyjs-gz" type="application/octet-stream">{plotly_js_gzip_b64(traces)}</script>
<script id="figures-gz" type="application/octet-stream">{gzip_b64(data.encode())}</script>
<script>{LOADER_JS.replace("DRAW", draw)}</script>
</body></html>
"""


def _metrics_table_html(result: PipelineResult) -> str:
    rows = metrics_rows(result)
    keys = list(rows[0])
    head = "".join(header(k, METRIC_LABELS.get(k, (k, str))[0]) for k in keys)
    shown = {k: METRIC_LABELS.get(k, (k, _cell))[1] for k in keys}
    body = "".join("<tr>" + "".join(f"<td{align(k)}>{html.escape(shown[k](row[k]))}</td>"
                                    for k in keys) + "</tr>" for row in rows)
    return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'


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


def check_output_paths(config: Path, output: Path, metrics: Path | None) -> str | None:
    """Why the output paths cannot be written, or None: checked before the compute.

    Each output must be a new or existing regular file in an existing, writable folder (no
    directory, device such as /dev/full, or FIFO), and no two of config, output and metrics
    may be the same file (``-o`` equal to ``--config`` would overwrite the config)."""
    named = [("--output", output)] + ([("--metrics", metrics)] if metrics is not None else [])
    seen = [("--config", config)]
    for flag, path in named:
        for other_flag, other in seen:
            if _same_file(path, other):
                return f"{flag} {path} is the same file as {other_flag}; choose another path"
        seen.append((flag, path))
        try:
            info = path.stat()
        except FileNotFoundError:
            info = None
        except OSError as err:
            return f"{flag} {path}: {err.strerror}"
        if info is not None:
            if stat.S_ISDIR(info.st_mode):
                return f"{flag} {path} is a directory; give a file name"
            if not stat.S_ISREG(info.st_mode):
                return f"{flag} {path} is not a regular file (a device or FIFO); give a file"
            if not os.access(path, os.W_OK):
                return f"{flag} {path} is not writable"
        folder = path.parent
        if not folder.is_dir():
            return f"{flag} {path}: the folder {folder} does not exist"
        if not os.access(folder, os.W_OK | os.X_OK):
            return f"{flag} {path}: the folder {folder} is not writable"
    return None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file next to ``path``, then rename it over ``path``: a
    failed write (a full disk) leaves no half-written report behind."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)  # keep an existing file's permissions
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask  # what open() would have created
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    problem = check_output_paths(args.config, args.output, args.metrics)
    if problem is not None:  # before the compute, so a typo costs nothing
        print(f"error: {problem}", file=sys.stderr)
        return 2
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
    outputs = [(args.output, build_report_html(result, yaml_text,
                                               f"Report: {args.config.name}"))]
    if args.metrics is not None:
        outputs.append((args.metrics, metrics_to_csv(result) if args.metrics.suffix == ".csv"
                        else metrics_to_json(result)))
    for path, text in outputs:
        try:
            write_atomically(path, text)
        except OSError as err:  # a full disk (/dev/full), a path that vanished, ...
            print(f"error: cannot write {path}: {err.strerror or err}", file=sys.stderr)
            return 2
    for row in metrics_rows(result):
        print(f"{row['tensor']:>10}: QSNR {_cell(row['qsnr'])} dB, "
              f"clip {_cell(100 * (row['clip_fraction'] or 0))}%")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
