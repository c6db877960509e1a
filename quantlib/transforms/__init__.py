"""Outlier-mitigation transforms for one linear layer y = x W^T + b (W [out, in]), as pure torch:

- SmoothQuant (``smoothquant``): x diag(1/s), W diag(s), and the output-QSNR-vs-alpha curve;
- randomized Hadamard rotation (``hadamard``, QuaRot-style): x Q, W Q with Q orthogonal;
- AWQ (``awq``): per-channel scales searched on a grid of alphas for the lowest output MSE;
- GPTQ (``gptq``): column-wise quantization with second-order error feedback;

on any weight format of ``quantlib.formats`` (``weight_quant.WeightFormat``: int per tensor /
channel / block, FP8, MX, NVFP4). ``apply_transform(weight, bias, calib_x, TransformConfig,
WeightFormat)`` runs a ``transform:`` config section on a layer.
"""

from quantlib.transforms.apply import TransformResult, apply_transform
from quantlib.transforms.awq import AWQResult, awq_search
from quantlib.transforms.config import (
    AWQConfig,
    GPTQConfig,
    SmoothQuantConfig,
    TransformConfig,
)
from quantlib.transforms.control import TransformCancelled
from quantlib.transforms.gptq import gptq_hessian, gptq_quantize
from quantlib.transforms.hadamard import (
    HadamardRotation,
    hadamard_matrix,
    is_supported_size,
    random_hadamard,
)
from quantlib.transforms.smoothquant import (
    output_qsnr,
    smooth_layer,
    smoothquant_alpha_curve,
    smoothquant_scales,
)
from quantlib.transforms.weight_quant import WeightFormat, WeightQuantizer

__all__ = [
    "AWQConfig",
    "AWQResult",
    "GPTQConfig",
    "HadamardRotation",
    "SmoothQuantConfig",
    "TransformCancelled",
    "TransformConfig",
    "TransformResult",
    "WeightFormat",
    "WeightQuantizer",
    "apply_transform",
    "awq_search",
    "gptq_hessian",
    "gptq_quantize",
    "hadamard_matrix",
    "is_supported_size",
    "output_qsnr",
    "random_hadamard",
    "smooth_layer",
    "smoothquant_alpha_curve",
    "smoothquant_scales",
]
