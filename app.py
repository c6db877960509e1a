"""Quantization explorer (placeholder until the explorer lands)."""

import streamlit as st

st.set_page_config(page_title="Quantization Explorer", layout="wide")
st.title("Quantization Explorer")
st.info("The explorer UI is being built. quantlib is ready: `python -m quantlib.quant_linear`.")
