"""The seed's self-test of `QuantLinear` (``python -m quantlib.quant_linear`` runs it; the
class is passed in, so this module does not import ``quant_linear``)."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from quantlib.config_loader import load_config_from_yaml


def quantlinear_self_test(layer_class: type) -> list[str]:
    """The seed's self-test; returns the failed checks (empty when all pass)."""
    config_path = Path(__file__).resolve().parents[1] / "configs" / "attn_config.yaml"
    configs = load_config_from_yaml(config_path)
    gen = torch.Generator().manual_seed(0)
    linear = nn.Linear(768, 768)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(768, 768, generator=gen) / math.sqrt(768))
    layer = layer_class(input_module=linear, out_config=configs["output"],
                        weight_config=configs["weight"], layer_name="test_layer")
    failures: list[str] = []

    def check(ok: bool, what: str) -> None:
        print(f"  [{'ok' if ok else 'FAIL'}] {what}")
        if not ok:
            failures.append(what)

    bt = configs["weight"].bit_type
    check(layer.quant_weight is not None and layer.quant_weight.dtype == torch.int32,
          "weight is quantized at construction")
    check(bool(layer.quant_weight.min() >= bt.qmin and layer.quant_weight.max() <= bt.qmax),
          f"weight codes lie in [{bt.qmin}, {bt.qmax}]")
    weight_scale_before = layer.weight_scaler.clone()
    for _ in range(8):
        layer.calibration(torch.randn(64, 768, generator=gen))
    check(torch.equal(layer.weight_scaler, weight_scale_before),
          "calibration leaves the weight qparams alone")
    check(layer.output_observer.num_observed == 8 * 64, "calibration feeds the output observer")
    (w_scale, _), (o_scale, _) = layer.compute_output_quant_params()
    check(o_scale is not None and o_scale.shape == (768,), "output qparams are per channel [768]")
    layer.mode = "quantized"
    layer(torch.randn(64, 768, generator=gen))
    res = layer.get_profiling_results()
    check(set(res) == {"weight", "output"}, "profiling results split into weight and output")
    w_qsnr = res["weight"]["statistics"]["qsnr"]
    o_qsnr = res["output"]["statistics"]["qsnr"]
    print(f"  Output QSNR: {o_qsnr:.2f} dB")
    print(f"  Weight QSNR: {w_qsnr:.2f} dB")
    check(w_qsnr > 35.0, "8-bit weight QSNR above 35 dB")
    check(o_qsnr > 25.0, "8-bit output QSNR above 25 dB")
    check(math.isfinite(res["output"]["statistics"]["mse"]), "output MSE is finite")
    return failures
