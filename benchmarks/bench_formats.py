"""Weight quantization in MXFP4, NVFP4 and INT4-g128: ours vs torchao's own functions, CPU.

    python benchmarks/bench_formats.py [--size 4096] [--repeat 7]

Each row quantizes one [size, size] N(0, 1) weight and dequantizes it back, as
`QuantLinear.quantize_weight` does (observer -> block qparams -> int32 codes -> dequant),
against torchao 0.18's reference for the format:

- MXFP4: ``to_mx(w, float4_e2m1fn_x2, 32, ScaleCalculationMode.FLOOR)`` then ``to_dtype``;
- NVFP4: ``NVFP4Tensor.to_nvfp4(w, per_tensor_scale=per_tensor_amax_to_scale(amax))`` then
  ``.dequantize``;
- INT4-g128: ``choose_qparams_affine`` -> ``quantize_affine`` -> ``dequantize_affine`` with
  block (1, 128).

Runs are interleaved (ours, torchao, ours, ...) so load on a shared machine hits both alike;
the table gives medians and ours / torchao (target: <= 1.5). The results are also checked
equal.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import print_table  # noqa: E402
from quantlib.bit_type import BitType  # noqa: E402
from quantlib.observers import build_observer  # noqa: E402
from quantlib.quant_config import QuantConfig  # noqa: E402
from quantlib.quantizers import Quantizer  # noqa: E402


def ours(config: QuantConfig, w: torch.Tensor):
    """QuantLinear.quantize_weight's steps: codes and the dequantized weight."""
    def run():
        observer = build_observer(config, 0, "bench")
        observer.update(w)
        quantizer = Quantizer.from_config(config, 0)
        quantizer.update_quantization_params(*observer.get_quantization_params(),
                                             observer.get_tensor_scale())
        return quantizer.dequantize(quantizer.quant(w))
    return run


def torchao_reference(name: str, w: torch.Tensor):
    from torchao.prototype.mx_formats.config import ScaleCalculationMode
    from torchao.prototype.mx_formats.mx_tensor import to_dtype, to_mx
    from torchao.prototype.mx_formats.nvfp4_tensor import NVFP4Tensor, per_tensor_amax_to_scale
    from torchao.quantization.quant_primitives import (
        MappingType,
        choose_qparams_affine,
        dequantize_affine,
        quantize_affine,
    )

    if name == "mxfp4":
        def run():
            scale, data = to_mx(w, torch.float4_e2m1fn_x2, 32, ScaleCalculationMode.FLOOR)
            return to_dtype(data, scale, torch.float4_e2m1fn_x2, 32, w.dtype)
    elif name == "nvfp4":
        def run():
            scale = per_tensor_amax_to_scale(w.abs().amax())
            return NVFP4Tensor.to_nvfp4(w, per_tensor_scale=scale).dequantize(w.dtype)
    else:
        block = (1, 128)

        def run():
            scale, zero = choose_qparams_affine(w, MappingType.SYMMETRIC, block, torch.int32,
                                                -8, 7, torch.finfo(torch.float32).eps,
                                                torch.float32, torch.int32)
            codes = quantize_affine(w, block, scale, zero, torch.int32, -8, 7)
            return dequantize_affine(codes, block, scale, zero, torch.int32, -8, 7)
    return run


def interleaved(fns, repeat: int) -> list[float]:
    """Median seconds of each of ``fns``, run in turn ``repeat`` times after one warmup."""
    times: list[list[float]] = [[] for _ in fns]
    for fn in fns:
        fn()
    for _ in range(repeat):
        for fn, bucket in zip(fns, times):
            gc.collect()
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    w = torch.randn(args.size, args.size, generator=torch.Generator().manual_seed(0))
    configs = {
        "mxfp4": QuantConfig("block_wise", BitType(name="mxfp4")),
        "nvfp4": QuantConfig("block_wise", BitType(name="nvfp4")),
        "int4_g128": QuantConfig("block_wise", BitType(4, True), block_size=128),
    }
    rows = []
    for name, config in configs.items():
        mine, theirs = ours(config, w), torchao_reference(name, w)
        same = torch.equal(mine(), theirs())
        t_ours, t_ao = interleaved([mine, theirs], args.repeat)
        rows.append([name, f"{t_ours * 1e3:.1f}", f"{t_ao * 1e3:.1f}", f"{t_ours / t_ao:.2f}",
                     "yes" if same else "NO"])
    print_table(f"Weight [{args.size}, {args.size}] quantize + dequantize, CPU "
                f"({torch.get_num_threads()} threads), median of {args.repeat}",
                ["format", "ours ms", "torchao ms", "ours / torchao", "bit-exact"], rows)


if __name__ == "__main__":
    main()
