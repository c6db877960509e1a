"""Full-cycle latency against the raw torch floor, figure payloads, and peak memory.

    python benchmarks/bench_pipeline.py

Cycle = the explorer's pipeline: build QuantLinear (weight observed + quantized) -> calibrate
-> output qparams -> quantized forward (profiled against fp32) -> results -> Plotly figures
serialised to JSON. The raw floor does the same
math with bare torch: per-channel aminmax, torch.fake_quantize_per_channel_affine for weight and
output, two F.linear (fp32 and quantized) and the float64 error sums.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import best_time, print_table  # noqa: E402
from explorer.core.pipeline import DataSettings, SampleData, build_figures, run_pipeline  # noqa: E402
from quantlib.bit_type import BitType  # noqa: E402
from quantlib.config_loader import load_config_from_yaml  # noqa: E402
from quantlib.quant_config import QuantConfig  # noqa: E402

MINMAX = QuantConfig(calibration_mode="channel_wise", bit_type=BitType(8, True))
SCENARIOS = {
    "default 768x768, 8x256 tokens (attn_config)": (768, 768, 8, 256, "attn"),
    "default 768x768, 8x256 tokens (MinMax)": (768, 768, 8, 256, "minmax"),
    "4096x4096, 2048 tokens (MinMax)": (4096, 4096, 1, 2048, "minmax"),
}


def make_inputs(features: int, batches: int, tokens: int):
    gen = torch.Generator().manual_seed(0)
    calib = [torch.randn(tokens, features, generator=gen) for _ in range(batches)]
    return calib, torch.randn(tokens, features, generator=gen)


def configs_for(kind: str):
    if kind == "attn":
        cfg = load_config_from_yaml(ROOT / "configs" / "attn_config.yaml")
        return cfg["weight"], cfg["output"]
    return MINMAX, MINMAX


def quantlib_cycle(linear, calib, eval_x, kind, with_figures=True):
    """build -> calibrate -> qparams -> quantized forward -> profile (-> explorer figures)."""
    w_cfg, o_cfg = configs_for(kind)
    configs = {"weight": w_cfg, "output": o_cfg, "activation": None}
    out_f, in_f = linear.weight.shape
    settings = DataSettings(in_features=in_f, out_features=out_f, num_batches=len(calib),
                            batch_size=calib[0].shape[0])
    data = SampleData(settings, linear.weight.detach(), linear.bias.detach(), tuple(calib),
                      eval_x)
    result = run_pipeline(configs, data)
    if not with_figures:
        return result
    return [fig.to_json() for fig in build_figures(result).values()]


def raw_floor(linear, calib, eval_x):
    w, b = linear.weight.detach(), linear.bias.detach()
    wmin, wmax = torch.aminmax(w, dim=1)
    w_scale = torch.maximum(-wmin, wmax).clamp(min=1e-12) / 127.5
    zeros = torch.zeros_like(w_scale, dtype=torch.int32)
    w_q = torch.fake_quantize_per_channel_affine(w, w_scale, zeros, 0, -128, 127)
    w_err = (w_q - w).pow(2).sum(dtype=torch.float64)
    omin = omax = None
    for x in calib:
        out = F.linear(x, w, b)
        bmin, bmax = torch.aminmax(out, dim=0)
        omin = bmin if omin is None else torch.minimum(omin, bmin)
        omax = bmax if omax is None else torch.maximum(omax, bmax)
    o_scale = torch.maximum(-omin, omax).clamp(min=1e-12) / 127.5
    ref = F.linear(eval_x, w, b)
    y = torch.fake_quantize_per_channel_affine(F.linear(eval_x, w_q, b), o_scale,
                                               torch.zeros_like(zeros[: len(o_scale)]), 1,
                                               -128, 127)
    return w_err, (y - ref).pow(2).sum(dtype=torch.float64), ref.pow(2).sum(dtype=torch.float64)


def bench_cycles() -> tuple[str, dict]:
    rows, payload_rows, metrics = [], [], {}
    for name, (out_f, in_f, batches, tokens, kind) in SCENARIOS.items():
        torch.manual_seed(0)
        linear = nn.Linear(in_f, out_f)
        calib, eval_x = make_inputs(in_f, batches, tokens)
        args = (linear, calib, eval_x)
        ours = best_time(lambda a=args, k=kind: quantlib_cycle(*a, k), repeat=3)
        lib_only = best_time(lambda a=args, k=kind: quantlib_cycle(*a, k, False), repeat=3)
        floor = best_time(lambda a=args: raw_floor(*a), repeat=3)
        rows.append([name, f"{ours * 1e3:.0f}", f"{lib_only * 1e3:.0f}", f"{floor * 1e3:.0f}",
                     f"{ours / floor:.2f}x", f"{lib_only / floor:.2f}x"])
        sizes = [len(j) for j in quantlib_cycle(linear, calib, eval_x, kind)]
        payload_rows.append([name, f"{len(sizes)}", f"{sum(sizes) / 1024:.0f}",
                             f"{max(sizes) / 1024:.0f}"])
        metrics[name] = {"cycle_s": ours, "floor_s": floor, "ratio": ours / floor,
                         "payload_total": sum(sizes), "payload_max": max(sizes)}
    out = print_table("Full cycle vs raw torch floor (median of 3)",
                      ["scenario", "cycle + figures ms", "without figures ms", "raw floor ms",
                       "ratio (with figures)", "ratio (without)"], rows)
    out += print_table("Figure JSON payload", ["scenario", "figures", "total KiB",
                                                "largest KiB"], payload_rows)
    return out, metrics


PEAK_SCRIPT = """
import json, sys, torch
sys.path.insert(0, {root!r})
from torch import nn
from benchmarks.bench_pipeline import quantlib_cycle, make_inputs

def status(field):  # kB, from /proc (ru_maxrss would carry the parent's peak over exec)
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])

open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
base = status("VmRSS")
torch.manual_seed(0)
linear = nn.Linear(4096, 4096)
calib, eval_x = make_inputs(4096, 1, 2048)
quantlib_cycle(linear, calib, eval_x, "minmax")
print(json.dumps({{"base_kib": base, "peak_kib": status("VmHWM")}}))
"""


def bench_memory() -> tuple[str, float]:
    """Peak RSS growth of one 4096x4096 cycle in a fresh process, against its tensors."""
    proc = subprocess.run([sys.executable, "-c", PEAK_SCRIPT.format(root=str(ROOT))],
                          capture_output=True, text=True, check=True)
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    grown = (data["peak_kib"] - data["base_kib"]) * 1024
    # weight: fp32, int32 codes, dequantized; activations [2048, 4096]: calibration input,
    # eval input, fp32 output, quantized output
    tensors = 4096 * 4096 * 4 * 3 + 2048 * 4096 * 4 * 4
    table = print_table("Peak memory of the 4096x4096 / 2048-token cycle",
                        ["tensors involved MiB", "peak RSS growth MiB", "ratio"],
                        [[f"{tensors / 2**20:.0f}", f"{grown / 2**20:.0f}",
                          f"{grown / tensors:.2f}x"]])
    return table, grown / tensors


def main() -> None:
    bench_cycles()
    bench_memory()


if __name__ == "__main__":
    main()
