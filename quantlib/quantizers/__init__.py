"""Quantizers: the exact integer grid (functional) and the module holding qparams."""

from quantlib.quantizers.functional import (
    calculate_qparams,
    dequantize,
    fake_quantize,
    grid_range,
    quantize,
)
from quantlib.quantizers.quantizer import Quantizer

__all__ = [
    "Quantizer",
    "calculate_qparams",
    "dequantize",
    "fake_quantize",
    "grid_range",
    "quantize",
]
