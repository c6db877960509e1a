"""The quantization explorer: a Streamlit app over `quantlib`, one package per feature.

Dependencies run one way (``tests/test_architecture.py`` checks them):
``app.py`` -> feature panels -> feature logic -> `explorer.data` -> `explorer.core` -> quantlib.

- `explorer.core`: the pure pipeline (configs + data -> results), bounded caches, YAML text
  editing, the shared session state and formatting; `core.panel` holds the shared Streamlit
  helpers.
- `explorer.data`: where a layer and its inputs come from (synthetic, digits MLP, uploads,
  MiniLM weights) and the sidebar's data source picker.
- Features: `single` (one layer's results), `compare`, `model` (whole model), `teach`,
  `share` (link, exports, the report CLI).

In every package, ``panel.py`` is the only kind of module that imports Streamlit; logic
modules and ``figures.py`` (pure Plotly) never import a panel.
"""
