"""TransformConfig: the transform: section, validated with errors that name the field."""

from __future__ import annotations

import pytest

from quantlib.errors import ConfigError
from quantlib.transforms.config import (
    GPTQConfig,
    SmoothQuantConfig,
    TransformConfig,
)


def test_the_issue_example_parses_and_round_trips():
    cfg = TransformConfig.from_dict({
        "smoothquant": {"alpha": 0.5}, "rotation": "hadamard", "seed": 3,
        "weight_algorithm": "gptq", "gptq": {"damp": 0.01, "block": 128, "act_order": False}})
    assert cfg.smoothquant == SmoothQuantConfig(0.5) and cfg.rotation == "hadamard"
    assert cfg.gptq == GPTQConfig(0.01, 128, False) and cfg.seed == 3
    assert TransformConfig.from_dict(cfg.to_dict()) == cfg


def test_empty_and_none_give_the_defaults():
    assert TransformConfig.from_dict(None) == TransformConfig.from_dict({}) == TransformConfig()
    assert TransformConfig().is_identity
    assert TransformConfig.from_dict({"smoothquant": None}).smoothquant is None


BAD = [
    ({"smoothquant": {"alpha": 1.5}}, "transform.smoothquant.alpha", "number in \\[0, 1\\]"),
    ({"smoothquant": {"alpha": True}}, "transform.smoothquant.alpha", "number in"),
    ({"smoothquant": 0.5}, "transform.smoothquant", "mapping such as \\{alpha: 0.5\\}"),
    ({"rotation": "random"}, "transform.rotation", "choose one of none, hadamard"),
    ({"weight_algorithm": "gptqq"}, "transform.weight_algorithm", "rtn, awq, gptq"),
    ({"seed": -1}, "transform.seed", "integer from 0 to"),
    ({"gptq": {"damp": 0}}, "transform.gptq.damp", "\\(0, 1\\]"),
    ({"gptq": {"damp": 2.0}}, "transform.gptq.damp", "\\(0, 1\\]"),
    ({"gptq": {"block": 10**9}}, "transform.gptq.block", "integer from 1 to 4096"),
    ({"gptq": {"act_order": "yes"}}, "transform.gptq.act_order", "true or false"),
    ({"awq": {"grid": 10**6}}, "transform.awq.grid", "integer from 2 to 100"),
    ({"gptq": {"dmap": 0.1}}, "transform.gptq.dmap", "did you mean 'damp'"),
    ({"rotaton": "hadamard"}, "transform.rotaton", "did you mean 'rotation'"),
    ({"smoothquant": {"alfa": 0.5}}, "transform.smoothquant.alfa", "valid keys: alpha"),
    (["rotation"], "transform", "mapping"),
]


@pytest.mark.parametrize("body,path,match", BAD, ids=[b[1].split(".", 1)[-1] + "-" + str(i)
                                                      for i, b in enumerate(BAD)])
def test_bad_values_name_the_field_and_the_valid_choices(body, path, match):
    with pytest.raises(ConfigError, match=match) as info:
        TransformConfig.from_dict(body)
    assert info.value.path == path


def test_direct_construction_is_validated_too():
    with pytest.raises(ConfigError, match="transform.gptq"):
        TransformConfig(gptq={"damp": 0.1})
    with pytest.raises(ConfigError, match="transform.gptq.block"):
        GPTQConfig(block=0)
