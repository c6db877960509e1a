"""Element grids and element codes of every format.

Code convention (what ``QuantLinear.quant_weight`` holds, int32):

- integer formats: the integer code q in [qmin, qmax] (torch.ao's convention);
- float formats (FP8, MXFP*, NVFP4): the *signed grid index*: ``code = sign(v) * i`` where i
  is the index of |v| in the format's sorted non-negative element values (``0`` -> 0, the
  smallest subnormal -> 1, ..., ``max_finite`` -> n - 1). Codes are monotone in value,
  0 is 0, -0 maps to 0, and codes run over [-(n - 1), n - 1] (``BitType.qmin``/``qmax``),
  e.g. E2M1 (FP4) has n = 8 and codes -7..7: 15 distinct values;
- MXINT8: the int8 fixed-point code k (value k / 64), k in [-127, 127].
"""

from __future__ import annotations

import functools

import torch

from quantlib.formats.minifloat import Minifloat
from quantlib.formats.mx import MXINT8_FRACTION_BITS, MXINT8_MAX_CODE


@functools.cache
def _minifloat_grid(element: Minifloat) -> tuple[float, ...]:
    values = [0.0]
    emin = element.min_exponent
    step = 2.0 ** (emin - element.mbits)
    values += [m * step for m in range(1, 2**element.mbits)]  # subnormals
    for exponent in range(emin, element.max_pow2 + 1):
        for mantissa in range(2**element.mbits):
            value = 2.0**exponent * (1 + mantissa / 2**element.mbits)
            if value <= element.max_normal:
                values.append(value)
    return tuple(values)


def nonnegative_grid(spec) -> torch.Tensor:
    """The sorted non-negative element values of a float format ``spec`` (a `FormatSpec`):
    float32 [n]; ``grid[i]`` is the value of code i."""
    if spec.family == "int":
        raise ValueError(f"{spec.name} is an integer format; its codes are the integers "
                         "qmin..qmax")
    if spec.element is None:  # MXINT8: k / 64
        return torch.arange(MXINT8_MAX_CODE + 1, dtype=torch.float32) / 2**MXINT8_FRACTION_BITS
    return torch.tensor(_minifloat_grid(spec.element), dtype=torch.float32)


def max_code(spec) -> int:
    """The largest code of a float format: n - 1 (E2M1: 7, E4M3: 126, E5M2: 123)."""
    if spec.element is None:
        return MXINT8_MAX_CODE
    return len(_minifloat_grid(spec.element)) - 1


def signed_grid(spec) -> torch.Tensor:
    """All representable element values of a float format, sorted: float32 [2n - 1]."""
    grid = nonnegative_grid(spec)
    return torch.cat([-grid.flip(0)[:-1], grid])


def values_to_codes(values: torch.Tensor, spec) -> torch.Tensor:
    """Element values already on the grid (float32, any shape) -> int32 codes (same shape).

    One table lookup: FP8 values cast exactly to their native byte, whose bits are sign and
    grid index; FP6/FP4 values are integer multiples k of the smallest subnormal, and a table
    over k gives the code. MXINT8: k = 64 v.
    """
    if spec.element is None:  # MXINT8: k = v * 64 (exact: v is on the grid)
        return (values * 2**MXINT8_FRACTION_BITS).to(torch.int32)
    table, offset, native = _code_table(spec, values.device)
    if native is not None:
        index = values.to(native).view(torch.int8).to(torch.int32) + offset
    else:
        index = (values * 2.0 ** (spec.element.mbits - spec.element.min_exponent)).to(
            torch.int32) + offset
    return table.index_select(0, index.reshape(-1)).reshape(values.shape)


def codes_to_values(codes: torch.Tensor, spec) -> torch.Tensor:
    """int codes (any shape) -> float32 element values (same shape), by table lookup."""
    if spec.element is None:
        return codes.to(torch.float32) * 2.0**-MXINT8_FRACTION_BITS
    table = _value_table(spec, codes.device)
    index = (codes.to(torch.int32) + (table.numel() // 2)).reshape(-1)
    return table.index_select(0, index).reshape(codes.shape)


@functools.lru_cache(maxsize=64)
def _value_table(spec, device: torch.device) -> torch.Tensor:
    """``signed_grid(spec)`` on ``device``: value of code c at c + n - 1."""
    return signed_grid(spec).to(device)


@functools.lru_cache(maxsize=64)
def _code_table(spec, device: torch.device):
    """(int32 table, index offset, native dtype or None) for `values_to_codes`.

    With a native FP8 dtype the table is indexed by the signed byte + 128 (sign bit, then the
    magnitude bits, which are the grid index; NaN bytes are never produced). Otherwise it is
    indexed by k + K, where v = k * 2^(emin - mbits) and K = max_finite / 2^(emin - mbits).
    """
    grid = nonnegative_grid(spec)
    native = spec.element.torch_dtype
    if native is not None:
        byte = torch.arange(-128, 128, dtype=torch.int32)
        magnitude = (byte & 0x7F).clamp(max=grid.numel() - 1)
        table = torch.where(byte < 0, -magnitude, magnitude)
        return table.to(device), 128, native
    unit = 2.0 ** (spec.element.min_exponent - spec.element.mbits)
    steps = torch.round(grid / unit).to(torch.int64)  # k of each grid value
    top = int(steps[-1])
    table = torch.zeros(2 * top + 1, dtype=torch.int32)
    table[top + steps] = torch.arange(grid.numel(), dtype=torch.int32)
    table[top - steps] = -torch.arange(grid.numel(), dtype=torch.int32)
    return table.to(device), top, None
