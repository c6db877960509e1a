"""torchao 0.18 references for the format kernels (tests only; quantlib never imports it)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("torchao")

from torchao.prototype.mx_formats.config import ScaleCalculationMode  # noqa: E402
from torchao.prototype.mx_formats.constants import DTYPE_FP6_E2M3, DTYPE_FP6_E3M2  # noqa: E402
from torchao.prototype.mx_formats.mx_tensor import to_dtype, to_mx  # noqa: E402
from torchao.prototype.mx_formats.nvfp4_tensor import (  # noqa: E402
    NVFP4Tensor,
    per_tensor_amax_to_scale,
)
from torchao.quantization.quant_primitives import (  # noqa: E402
    _choose_scale_float8,
    _dequantize_affine_float8,
    _quantize_affine_float8,
)

FP8_DTYPES = {"fp8_e4m3": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2}
MX_ELEMENT_DTYPES = {
    "mxfp8_e4m3": torch.float8_e4m3fn,
    "mxfp8_e5m2": torch.float8_e5m2,
    "mxfp6_e2m3": DTYPE_FP6_E2M3,
    "mxfp6_e3m2": DTYPE_FP6_E3M2,
    "mxfp4": torch.float4_e2m1fn_x2,
}


def fp8_block_size(x: torch.Tensor, block_size: int | None, axis: int | None) -> list[int]:
    """torchao's block_size list: the whole tensor, one row along ``axis``, or [1, ..., N]."""
    if block_size is not None:
        return [1] * (x.dim() - 1) + [block_size]
    if axis is None:
        return list(x.shape)
    sizes = list(x.shape)
    sizes[axis % x.dim()] = 1
    return sizes


def fp8_reference(x: torch.Tensor, name: str, block_size: int | None = None,
                  axis: int | None = None, hp_value_ub: float | None = None) -> torch.Tensor:
    dtype = FP8_DTYPES[name]
    scale = _choose_scale_float8(x, fp8_block_size(x, block_size, axis), dtype,
                                 hp_value_ub=hp_value_ub)
    codes = _quantize_affine_float8(x, scale, dtype)
    return _dequantize_affine_float8(codes, scale, x.dtype)


def mx_reference(x: torch.Tensor, name: str) -> torch.Tensor:
    elem_dtype = MX_ELEMENT_DTYPES[name]
    scale, data = to_mx(x, elem_dtype, 32, ScaleCalculationMode.FLOOR)
    return to_dtype(data, scale, elem_dtype, 32, x.dtype)


def nvfp4_reference(x: torch.Tensor, amax: torch.Tensor | None = None) -> torch.Tensor:
    amax = x.abs().amax() if amax is None else amax
    tensor = NVFP4Tensor.to_nvfp4(x, per_tensor_scale=per_tensor_amax_to_scale(amax))
    return tensor.dequantize(x.dtype)


def assert_equal_or_zero_where_reference_nan(ours: torch.Tensor, ref: torch.Tensor,
                                             x: torch.Tensor) -> None:
    """Bit-exact where torchao is finite; where torchao gives NaN (0/0 on an all-zero block)
    the input is 0 and so is ours."""
    nan = torch.isnan(ref)
    assert not torch.isnan(ours).any()
    assert torch.equal(x[nan], torch.zeros_like(x[nan]))
    assert torch.equal(ours[nan], torch.zeros_like(ours[nan]))
    assert torch.equal(ours[~nan], ref[~nan])
