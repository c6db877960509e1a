"""Number formats in the compare view (pure, no Streamlit): the one-click format sets, bits
per element and the QSNR-vs-bits-per-element Pareto front.

- `FORMAT_SETS`: name -> [(config name, YAML document)]: "4-bit formats" (INT4 per channel,
  INT4 g128, MXFP4, NVFP4 weights), "FP8 vs INT8" and "Outlier fixes" (one W4A8 recipe with
  no transform, SmoothQuant, rotation and GPTQ);
- `bits_axis(runs)`: "bits" when every config is a per-tensor/per-channel integer, else
  "bits per element" (scales included), the x-axis of the sweep;
- `pareto_front(points)`: the configs no other config beats on both QSNR and bits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

_INT8_OUT = ("outputs:\n  calibration_mode: layer_wise\n  bit_type: {bits: 8, signed: true}\n"
             "  observer_type: MinmaxObserver\n  quantization_method: Uniform\n")


def _weight_doc(comment: str, weight: str, outputs: str = _INT8_OUT) -> str:
    body = "".join(f"  {line}\n" for line in weight.strip().splitlines())
    return f"# {comment}\nweight:\n{body}{outputs}"


FORMAT_SETS: dict[str, list[tuple[str, str]]] = {
    "4-bit formats": [
        ("INT4 per channel", _weight_doc(
            "INT4 weights, one fp32 scale per output channel; int8 outputs per tensor.",
            "calibration_mode: channel_wise\nbit_type: {bits: 4, signed: true}")),
        ("INT4 g128", _weight_doc(
            "INT4 weights, one fp32 scale per 128 inputs (GPTQ/AWQ style); int8 outputs.",
            "calibration_mode: block_wise\nblock_size: 128\nbit_type: {bits: 4, signed: true}")),
        ("MXFP4", _weight_doc(
            "MXFP4 weights: E2M1 values, a power-of-two (E8M0) scale per 32; int8 outputs.",
            "calibration_mode: block_wise\nblock_size: 32\nbit_type: {name: mxfp4}")),
        ("NVFP4", _weight_doc(
            "NVFP4 weights: E2M1 values, an E4M3 scale per 16 and an fp32 tensor scale; int8 "
            "outputs.", "calibration_mode: block_wise\nblock_size: 16\nbit_type: {name: nvfp4}")),
    ],
    "FP8 vs INT8": [
        ("INT8", _weight_doc(
            "INT8 weights per output channel, int8 outputs per tensor.",
            "calibration_mode: channel_wise\nbit_type: {bits: 8, signed: true}")),
        ("FP8 E4M3", _weight_doc(
            "FP8 E4M3 weights per output channel (scale = amax / 448), FP8 outputs per tensor.",
            "calibration_mode: channel_wise\nbit_type: {name: fp8_e4m3}",
            "outputs:\n  calibration_mode: layer_wise\n  bit_type: {name: fp8_e4m3}\n"
            "  observer_type: MinmaxObserver\n  quantization_method: Uniform\n")),
    ],
}
_W4A8 = ("calibration_mode: block_wise\nblock_size: 32\nbit_type: {bits: 4, signed: true}")
_A8 = ("activation:\n  calibration_mode: layer_wise\n  bit_type: {bits: 8, signed: true}\n"
       "  observer_type: MinmaxObserver\n  quantization_method: Uniform\n")


def _fix_doc(comment: str, transform: str = "") -> str:
    return _weight_doc(f"W4 g32, A8 per tensor: {comment}", _W4A8, _INT8_OUT + _A8) + transform


FORMAT_SETS["Outlier fixes"] = [
    ("RTN", _fix_doc("round to nearest, no transform.")),
    ("SmoothQuant", _fix_doc("SmoothQuant moves the inputs' outlier ranges into the weight.",
                             "transform:\n  smoothquant: {alpha: 0.5}\n")),
    ("Rotation", _fix_doc("a randomized Hadamard rotation spreads the outliers.",
                          "transform:\n  rotation: hadamard\n")),
    ("GPTQ", _fix_doc("GPTQ corrects each column's rounding error on the next ones.",
                      "transform:\n  weight_algorithm: gptq\n")),
]
FORMAT_SET_HELP = {
    "Outlier fixes": "The same W4 (scale per 32 inputs) / A8 (int8 inputs per tensor) "
                     "recipe four ways: round to nearest, SmoothQuant (alpha 0.5), a Hadamard "
                     "rotation and GPTQ. Best on a real layer with outlier inputs (sidebar: "
                     "MiniLM); the rotation needs in_features = 2^k or 12 x 2^k.",
    "4-bit formats": "Four 4-bit weight formats on the same layer (outputs int8 per tensor "
                     "in all four): INT4 with a scale per output channel, INT4 with a scale "
                     "per 128 inputs, MXFP4 and NVFP4. The Pareto chart shows what each "
                     "costs in bits per element, scales included.",
    "FP8 vs INT8": "8-bit floats (E4M3) against 8-bit integers, weights per channel and "
                   "outputs per tensor: floats keep relative precision on small values, "
                   "integers a finer step near the range's edge.",
}


def needs_bits_per_element(configs_list: Sequence[Mapping]) -> bool:
    """True when the configs' scale overhead differs: any float format or block_wise tensor
    (then bits alone would mislead, and the sweep's x-axis is bits per element)."""
    for configs in configs_list:
        for key in ("weight", "output"):
            config = configs.get(key)
            if config is not None and (config.bit_type.is_float or config.is_block_wise):
                return True
    return False


def pareto_front(points: Mapping[str, tuple[float, float]]) -> list[str]:
    """The names whose (bits, qsnr) no other point dominates (no more bits and at least as
    much QSNR, one strictly better), sorted by bits. NaN points are never on the front."""
    finite = {n: (b, q) for n, (b, q) in points.items()
              if not (math.isnan(b) or math.isnan(q))}
    front = [n for n, (b, q) in finite.items()
             if not any((b2 <= b and q2 >= q) and (b2 < b or q2 > q)
                        for m, (b2, q2) in finite.items() if m != n)]
    return sorted(front, key=lambda n: finite[n])
