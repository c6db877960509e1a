"""The live chart element: the figure it sends, the plotly.js it serves, and its fallback."""

from __future__ import annotations

import json

import plotly.graph_objects as go
import plotly.io as pio
from streamlit.testing.v1 import AppTest

from explorer.core import live_chart as LC
from explorer.core.plotly_bundle import plotly_js_version


def test_the_figure_is_plotly_pys_json_without_its_default_template():
    figure = go.Figure(go.Scatter(x=[0.5, 1.5, 2.5], y=[1, 4, 9], name="fp32"),
                       layout={"title": {"text": "Weight values"}, "height": 300})
    sent = json.loads(LC.figure_json(figure))
    expected = json.loads(pio.to_json(figure, validate=False))
    assert "template" in expected["layout"] and "template" not in sent["layout"]
    del expected["layout"]["template"]
    assert sent == expected


def test_the_served_bundle_is_the_installed_plotly_js_version_in_a_private_folder():
    assert LC.assets_dir().stat().st_mode & 0o077 == 0  # no other user can plant a script
    served = (LC.assets_dir() / "plotly.min.js").read_text(encoding="utf-8")
    installed = (LC.Path(LC.plotly.__file__).parent / "package_data" / "plotly.min.js")
    assert plotly_js_version(served[:400]) == plotly_js_version(
        installed.read_text(encoding="utf-8")[:400]) != ""


def test_cartesian_figures_are_live_and_others_go_to_st_plotly_chart():
    def script():
        import plotly.graph_objects as go

        from explorer.core.panel import live_chart

        live_chart(go.Figure(go.Scatter(y=[1, 2])), key="flat", config={})
        live_chart(go.Figure(go.Scatter3d(x=[1], y=[2], z=[3])), key="solid", config={})

    at = AppTest.from_function(script).run()
    assert not at.exception
    assert [element.key for element in at.get("bidi_component")] == ["flat"]
    assert [element.key for element in at.get("plotly_chart")] == ["solid"]
