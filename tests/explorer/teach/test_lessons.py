"""Teaching content: formula numbers are the layer's own; every scenario runs and its reveal
is true on the data it loads."""

import dataclasses

import pytest
import torch

from explorer.core.pipeline import run_pipeline
from explorer.data.sources import make_sample_data
from explorer.teach.lessons import OBSERVER_NOTES, SCENARIOS, formula_lines
from quantlib.bit_type import BitType
from quantlib.config_loader import load_config_from_string
from quantlib.observers import build_observer
from quantlib.quant_config import OBSERVER_TYPES, QuantConfig

# which tensor each scenario is about
FOCUS = {"outlier_channel": "weight", "relu_unsigned": "activation", "heavy_tails": "weight",
         "omse_4bit": "weight", "llm_outlier_feature": "activation",
         "mxfp4_vs_nvfp4": "weight"}


def test_every_observer_has_a_note():
    assert set(OBSERVER_NOTES) == set(OBSERVER_TYPES)


@pytest.mark.parametrize("method", ["Uniform", "Affine"])
@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_formula_numbers_equal_the_qparams(method, signed):
    cfg = QuantConfig(calibration_mode="channel_wise", bit_type=BitType(6, signed),
                      quantization_method=method)
    obs = build_observer(cfg)
    x = torch.randn(4, 100) + 0.3
    obs.update(x)
    scale, zero = obs.get_quantization_params()
    lo, hi = obs.compute_range()
    out = formula_lines(cfg, scale, zero, lo, hi, channel=2)
    v = out["values"]
    assert v["scale"] == float(scale[2]) and v["zero_point"] == int(zero[2])
    assert (v["qmin"], v["qmax"]) == (cfg.bit_type.qmin, cfg.bit_type.qmax)
    assert v["clip_hi"] == pytest.approx((cfg.bit_type.qmax - int(zero[2])) * float(scale[2]))
    assert any(f"{float(scale[2]):.6g}" in line for line in out["latex"])
    assert any(f"= {int(zero[2])}" in line for line in out["latex"])


@pytest.mark.parametrize("key", list(SCENARIOS))
def test_scenario_runs_and_its_reveal_holds(key):
    scenario = SCENARIOS[key]
    settings = dataclasses.replace(scenario.settings, num_batches=2, batch_size=64)
    focus = FOCUS[key]
    qsnr = []
    for text in (scenario.config_a, scenario.config_b):
        result = run_pipeline(load_config_from_string(text), make_sample_data(settings))
        qsnr.append(result.tensors[focus].statistics["qsnr"])
    assert qsnr[1] > qsnr[0] + 1.0, (key, qsnr)  # B is the better recipe, clearly
    assert scenario.predict.endswith("?") and scenario.reveal
