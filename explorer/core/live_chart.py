"""What `explorer.core.panel.live_chart` sends: a Plotly chart updated in place.

`st.plotly_chart` derives a chart's element id from its figure, so each edit unmounts the
chart and draws a new one from scratch. `live_chart` is a custom component (components v2, no
iframe) whose id is its key alone: a new figure reaches the same element, and `Plotly.react`
updates the drawn chart. plotly.js is the vendored cartesian bundle that the HTML report also
embeds (every trace these figures use is in it), served once per page load and then cached.

Streamlit's chart theme is applied by `st.plotly_chart` in the browser; this element applies
a matching one from the page's theme variables (`--st-text-color`, `--st-font`, ...), so the
charts follow light and dark mode like the rest of the page.
"""

from __future__ import annotations

import functools
import gzip
import tempfile
from pathlib import Path

import plotly
import plotly.graph_objects as go
import plotly.io as pio

from explorer.core.plotly_bundle import (
    CARTESIAN_BUNDLE,
    cartesian_bundle_matches,
)

COMPONENT = "explorer.live_chart"

JS = """
const PLOTLY_URL = "component/%(assets)s/plotly.min.js";
// Streamlit's categorical palette, for traces without a colour of their own.
const COLORWAY = ["#0068c9", "#83c9ff", "#ff2b2b", "#ffabab", "#29b09d", "#7defa1",
                  "#ff8700", "#ffd16a", "#6d3fc0", "#d5dae5"];

function loadPlotly() {
  if (!window.__explorerPlotly) {
    window.__explorerPlotly = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = new URL(PLOTLY_URL, document.baseURI).href;
      script.onload = () => resolve(window.Plotly);
      script.onerror = () => { window.__explorerPlotly = null; reject(new Error("plotly.js")); };
      document.head.appendChild(script);
    });
  }
  return window.__explorerPlotly;
}

function withAlpha(color, alpha) {
  const hex = /^#([0-9a-f]{6})$/i.exec(color);
  if (hex) {
    const n = parseInt(hex[1], 16);
    return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
  }
  const rgb = /^rgba?\\(([^,]+),([^,]+),([^,)]+)/.exec(color);
  return rgb ? `rgba(${rgb[1]}, ${rgb[2]}, ${rgb[3]}, ${alpha})` : color;
}

function template(element) {
  const css = getComputedStyle(element);
  const read = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
  const text = read("--st-text-color", "#31333f");
  const background = read("--st-background-color", "#ffffff");
  const axis = {gridcolor: withAlpha(text, 0.1), zerolinecolor: withAlpha(text, 0.2),
                linecolor: withAlpha(text, 0.2),
                tickfont: {color: withAlpha(text, 0.6)}, title: {font: {color: text}}};
  return {layout: {
    font: {family: read("--st-font", "sans-serif"), color: text, size: 12},
    paper_bgcolor: background, plot_bgcolor: background, colorway: COLORWAY,
    xaxis: axis, yaxis: axis, hoverlabel: {font: {family: read("--st-font", "sans-serif")}},
    // A legend below the plot grows downwards when it wraps (never over the axis title).
    legend: {font: {color: text}, yanchor: "top"}, title: {font: {color: text, size: 15}},
  }};
}

export default function (component) {
  const { data, parentElement } = component;
  let chart = parentElement.querySelector(".explorer-live-chart");
  if (!chart) {
    chart = document.createElement("div");
    chart.className = "explorer-live-chart";
    parentElement.appendChild(chart);
  }
  const figure = JSON.parse(data.figure);
  const layout = Object.assign({template: template(parentElement), autosize: true},
                               figure.layout);
  chart.style.minHeight = `${layout.height || 450}px`;  // no jump while plotly.js loads
  loadPlotly()
    .then((Plotly) => Plotly.react(chart, figure.data, layout, data.config))
    .catch((error) => {
      console.error("explorer chart", error);
      chart.textContent = "This chart could not be drawn; reload the page to try again.";
    });
  return () => { if (window.Plotly) window.Plotly.purge(chart); };
}
"""


@functools.cache
def assets_dir() -> Path:
    """A folder holding plotly.min.js: the cartesian bundle, unpacked once per process into a
    private temporary folder (mode 0700, removed at exit; a shared, predictable path could be
    planted by another user), or plotly.py's own full bundle when the vendored one is not the
    installed plotly's plotly.js version."""
    if not cartesian_bundle_matches():
        return Path(plotly.__file__).parent / "package_data"
    folder = Path(_private_dir().name)
    (folder / "plotly.min.js").write_bytes(gzip.decompress(CARTESIAN_BUNDLE.read_bytes()))
    return folder


@functools.cache
def _private_dir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="explorer-plotly-")  # cached: alive until exit


def figure_json(figure: go.Figure) -> str:
    """The figure as plotly.js reads it, without plotly.py's default template (the browser
    applies the page's theme instead)."""
    spec = figure.to_plotly_json()
    spec["layout"] = {k: v for k, v in spec["layout"].items() if k != "template"}
    return pio.json.to_json_plotly(spec)
