"""Export a quantized layer as ``.safetensors``: integer codes, qparams and the config.

The file holds ``weight.codes`` (the smallest integer dtype that fits the bit width),
``weight.scale`` float32 [C], ``weight.zero_point`` int32 [C], ``bias`` float32 [out] and,
when calibrated, ``output.scale``/``output.zero_point`` (and ``input.*``). The metadata keeps
the YAML config, the layer name and each tensor's bit type, so a reader can dequantize with
``(codes - zero_point[:, None]) * scale[:, None]``.
"""

from __future__ import annotations

import json
import struct

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from quantlib.bit_type import BitType
from quantlib.quant_linear import QuantLinear
from quantlib.quantizers import dequantize

FORMAT = "quant-explorer/1"


def code_dtype(bit_type: BitType) -> torch.dtype:
    """Smallest torch integer dtype holding [qmin, qmax]."""
    for dtype in (torch.int8, torch.uint8, torch.int16, torch.int32):
        info = torch.iinfo(dtype)
        if info.min <= bit_type.qmin and bit_type.qmax <= info.max:
            return dtype
    return torch.int64


def export_layer(layer: QuantLinear, config_yaml: str) -> bytes:
    """Serialise ``layer``'s codes and qparams (and ``config_yaml``) as safetensors bytes."""
    w_bt = layer.weight_config.bit_type
    tensors = {
        "weight.codes": layer.quant_weight.to(code_dtype(w_bt)),
        "weight.scale": layer.weight_scaler.float(),
        "weight.zero_point": layer.weight_zero.to(torch.int32),
    }
    if layer.bias is not None:
        tensors["bias"] = layer.bias.float()
    metadata = {"format": FORMAT, "layer_name": layer.layer_name, "config": config_yaml,
                "weight.bit_type": _bit_type_text(w_bt)}
    for prefix, scale, zero, config in (
        ("output", layer.output_scaler, layer.output_zero, layer.out_config),
        ("input", layer.input_scaler, layer.input_zero, layer.act_config),
    ):
        if scale is not None:
            tensors[f"{prefix}.scale"] = scale.float()
            tensors[f"{prefix}.zero_point"] = zero.to(torch.int32)
            metadata[f"{prefix}.bit_type"] = _bit_type_text(config.bit_type)
    return save_safetensors({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                            metadata=metadata)


def load_exported(data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read an `export_layer` file back: (tensors, metadata)."""
    header_len = struct.unpack("<Q", data[:8])[0]
    metadata = json.loads(data[8:8 + header_len]).get("__metadata__", {})
    return load_safetensors(data), dict(metadata)


def dequantize_exported(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    """The dequantized weight [out, in] from an exported file's tensors."""
    return dequantize(tensors["weight.codes"], tensors["weight.scale"],
                      tensors["weight.zero_point"], axis=0)


def _bit_type_text(bit_type: BitType) -> str:
    return f"bits={bit_type.bits},signed={str(bit_type.signed).lower()},name={bit_type.name}"
