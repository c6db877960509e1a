"""The vendored plotly.js bundle that the live charts serve and the HTML report embeds.

plotly.js's official "cartesian" partial bundle (npm plotly.js-cartesian-dist-min, MIT,
gzipped in `vendor/`): a third of the full bundle's size, and every trace the explorer's
figures use is in it. It is used only while it is the installed plotly's plotly.js version.
"""

from __future__ import annotations

import functools
import gzip
import re
from pathlib import Path

from plotly.offline import get_plotlyjs

CARTESIAN_BUNDLE = Path(__file__).with_name("vendor") / "plotly-cartesian-4.1.1.min.js.gz"
CARTESIAN_TRACES = frozenset({"bar", "box", "contour", "heatmap", "histogram", "histogram2d",
                              "histogram2dcontour", "image", "pie", "scatter",
                              "scatterternary", "violin"})


def plotly_js_version(source: str) -> str:
    """The version in a plotly.js bundle's banner (``plotly.js ... v4.1.1``)."""
    match = re.search(r"plotly\.js[^\n]*? v(\d+\.\d+\.\d+)", source[:400])
    return match.group(1) if match else ""


@functools.lru_cache(maxsize=1)
def cartesian_bundle_matches() -> bool:
    """Whether the vendored bundle is the installed plotly's plotly.js version (figures are
    written for that version)."""
    if not CARTESIAN_BUNDLE.is_file():
        return False
    banner = gzip.decompress(CARTESIAN_BUNDLE.read_bytes())[:400].decode("ascii", "replace")
    return plotly_js_version(banner) == plotly_js_version(get_plotlyjs()[:400])
