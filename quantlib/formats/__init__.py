"""Number formats beyond per-tensor/per-channel integers, as pure torch fake-quantization
kernels: FP8 (E4M3, E5M2), OCP MX (MXFP8, MXFP6, MXFP4, MXINT8), NVFP4 and block-wise INT.

Every float format is bit-exact against torchao 0.18's reference (MXINT8, which torchao lacks,
follows the OCP MX v1.0 definition); torchao is needed by the tests only. Entry point:
``fake_quantize(x, name, block_size=None, axis=None, amax=None)``; ``FORMATS`` maps each name
to its ``FormatSpec``.
"""

from quantlib.formats.specs import FORMATS, FormatSpec

__all__ = ["FORMATS", "FormatSpec", "fake_quantize", "get_format"]


def __getattr__(name: str):
    # The kernels' entry points load on first use: `quantlib.bit_type` reads the format table
    # (`specs`) while the registry itself needs BitType.
    if name in ("fake_quantize", "get_format"):
        from quantlib.formats import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'quantlib.formats' has no attribute {name!r}")
