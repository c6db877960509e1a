"""The floor for `bench_browser.py`: a bare Streamlit page with one number input and one small
Plotly chart that depends on it. Whatever the explorer takes beyond this page is ours.

    streamlit run benchmarks/floor_app.py
"""

import plotly.graph_objects as go
import streamlit as st

bits = st.number_input("Bits", min_value=2, max_value=16, value=8, step=1, key="bits")
levels = min(2 ** int(bits), 64)  # a small figure whatever the bits
xs = [-1 + 2 * i / (levels - 1) for i in range(levels)]
fig = go.Figure(go.Scatter(x=xs, y=[x * x for x in xs], mode="lines+markers"))
fig.update_layout(title=f"{bits}-bit grid", height=300, margin={"l": 30, "r": 10, "t": 40,
                                                                "b": 30})
st.plotly_chart(fig, key="chart")
