"""Real data sources of the pipeline: the trained digits MLP, uploads and MiniLM weights."""

import io
import math

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save

from explorer.core import state as S
from explorer.core.pipeline import DataSettings, run_pipeline
from explorer.data import minilm, sources, synthetic
from explorer.data import panel as data_panel
from explorer.data import state as DS
from explorer.data.sources import (
    UploadedTensors,
    check_source_settings,
    fixed_shape,
    make_sample_data,
    split_rows,
    weight_candidates,
)
from explorer.data.uploads import UploadError
from explorer.share.link import SharedState, ShareError, decode_state, encode_state
from quantlib.config_loader import load_config_from_yaml
from tests.helpers import link_token, npy_bytes

GEN = torch.Generator().manual_seed(0)
VALID_YAML = "bit_type: {bits: 8}\n"


@pytest.fixture(scope="module")
def configs():
    return load_config_from_yaml(S.PRESET_DIR / S.DEFAULT_PRESET)


def upload(tensors: dict, name="w.safetensors") -> UploadedTensors:
    return UploadedTensors.from_bytes(save(tensors), name)


# --- synthetic stays as it was -----------------------------------------------------------


def test_default_settings_are_synthetic_and_build_the_same_tensors_as_before():
    settings = DataSettings(in_features=24, out_features=16, num_batches=2, batch_size=8)
    assert settings.source == "synthetic" and settings.upload_weight == ""
    data = make_sample_data(settings)
    assert data.settings is settings
    assert torch.equal(data.weight, synthetic.make_weight("Kaiming init", 16, 24, 0))
    assert torch.equal(data.calibration[1],
                       synthetic.make_calibration_batches("Gaussian", 2, 8, 24, 0)[1])


# --- trained digits MLP ---------------------------------------------------------------------


@pytest.mark.parametrize(("layer", "shape"), [("fc1", (256, 64)), ("fc2", (128, 256)),
                                              ("fc3", (10, 128))], ids=["fc1", "fc2", "fc3"])
def test_digits_layer_uses_trained_weights_and_real_activations(digits, layer, shape):
    settings = DataSettings(source="digits", model_layer=layer, num_batches=8, batch_size=256)
    data = make_sample_data(settings, digits=digits)
    assert (data.settings.out_features, data.settings.in_features) == shape  # not 768 x 768
    assert torch.equal(data.weight, digits.linear(layer).weight)
    assert torch.equal(data.bias, digits.linear(layer).bias)
    # 8 x 256 rows asked, 1437 available: 5 full batches and one of 157.
    assert [b.shape[0] for b in data.calibration] == [256] * 5 + [157]
    train = digits.layer_inputs(layer, "train")
    assert torch.equal(torch.cat(data.calibration), train)
    assert torch.equal(data.eval_batch, digits.layer_inputs(layer, "test"))
    assert data.eval_batch.shape == (360, shape[1])
    assert fixed_shape(settings) == shape


def test_digits_batches_follow_the_settings_when_rows_suffice(digits):
    data = make_sample_data(DataSettings(source="digits", model_layer="fc2", num_batches=3,
                                         batch_size=100), digits=digits)
    assert [b.shape for b in data.calibration] == [(100, 256)] * 3
    assert torch.equal(data.calibration[2], digits.layer_inputs("fc2", "train")[200:300])


def test_digits_pipeline_gives_finite_qsnr_for_the_real_shape(digits, configs):
    settings = DataSettings(source="digits", model_layer="fc2", num_batches=2, batch_size=128)
    result = run_pipeline(configs, make_sample_data(settings, digits=digits))
    assert result.settings.out_features == 128 and result.settings.in_features == 256
    for name in ("weight", "output"):
        assert math.isfinite(result.tensors[name].statistics["qsnr"])
    assert result.tensors["output"].error_map.shape == (360, 128)


def test_digits_model_of_another_seed_is_refused(digits):
    with pytest.raises(ValueError, match="seed"):
        make_sample_data(DataSettings(source="digits", seed=digits.seed + 1), digits=digits)


# --- uploads --------------------------------------------------------------------------------


def test_uploaded_npy_weight_with_synthetic_inputs():
    weight = torch.randn(12, 20, generator=GEN)
    up = UploadedTensors.from_bytes(npy_bytes(weight.numpy()), "layer.npy")
    assert up.digest == sources.digest_bytes(npy_bytes(weight.numpy()))
    settings = DataSettings(source="upload", upload_weight=up.digest, upload_tensor="layer",
                            num_batches=2, batch_size=8, input_source="Laplace")
    data = make_sample_data(settings, uploads={up.digest: up})
    assert torch.equal(data.weight, weight) and torch.equal(data.bias, torch.zeros(12))
    assert (data.settings.out_features, data.settings.in_features) == (12, 20)
    assert torch.equal(data.calibration[0],
                       synthetic.make_calibration_batches("Laplace", 2, 8, 20, 0)[0])
    assert fixed_shape(settings, {up.digest: up}) == (12, 20)


def test_state_dict_weight_takes_its_matching_bias():
    sd = {"fc.weight": torch.randn(6, 4, generator=GEN), "fc.bias": torch.randn(6, generator=GEN),
          "other.weight": torch.randn(3, 6, generator=GEN)}
    buf = io.BytesIO()
    torch.save(sd, buf)
    up = UploadedTensors.from_bytes(buf.getvalue(), "model.pt")
    assert list(weight_candidates(up.tensors)) == ["fc.weight", "other.weight"]
    for name, bias in (("fc.weight", sd["fc.bias"]), ("other.weight", torch.zeros(3))):
        data = make_sample_data(DataSettings(source="upload", upload_weight=up.digest,
                                             upload_tensor=name, num_batches=1, batch_size=4),
                                uploads={up.digest: up})
        assert torch.equal(data.weight, sd[name]) and torch.equal(data.bias, bias)


def test_uploaded_inputs_are_batched_with_a_held_out_tail():
    up_w = upload({"w": torch.randn(5, 8, generator=GEN)})
    x = torch.randn(300, 8, generator=GEN)
    up_x = upload({"x": x}, "x.safetensors")
    settings = DataSettings(source="upload", upload_weight=up_w.digest, upload_tensor="w",
                            upload_inputs=up_x.digest, num_batches=2, batch_size=64)
    data = make_sample_data(settings, uploads={u.digest: u for u in (up_w, up_x)})
    assert torch.equal(data.eval_batch, x[240:])  # 20 % of 300 = 60 rows (<= batch_size)
    assert [b.shape[0] for b in data.calibration] == [64, 64]
    assert torch.equal(torch.cat(data.calibration), x[:128])


def test_single_uploaded_input_row_is_used_for_both():
    up_w, up_x = upload({"w": torch.randn(5, 8)}), upload({"x": torch.ones(1, 8)}, "x.safetensors")
    data = make_sample_data(DataSettings(source="upload", upload_weight=up_w.digest,
                                         upload_tensor="w", upload_inputs=up_x.digest),
                            uploads={u.digest: u for u in (up_w, up_x)})
    assert torch.equal(data.eval_batch, torch.ones(1, 8))
    assert torch.equal(data.calibration[0], torch.ones(1, 8))


@pytest.mark.parametrize(("change", "fragment"), [
    ({"upload_weight": ""}, "no weight uploaded yet"),
    ({"upload_weight": "0" * 64}, "upload it again"),
    ({"upload_tensor": "nope"}, "no usable 2-D tensor named 'nope'"),
    ({"upload_inputs": "1" * 64}, "calibration file is no longer"),
    ({"upload_inputs": "mismatch"}, "in_features=8"),
], ids=["none", "gone", "unknown-tensor", "inputs-gone", "inputs-wrong-width"])
def test_unusable_upload_settings_raise_clear_upload_errors(change, fragment):
    up_w = upload({"w": torch.randn(5, 8)})
    up_x = upload({"x": torch.randn(10, 9)}, "x.safetensors")
    if change.get("upload_inputs") == "mismatch":
        change = {"upload_inputs": up_x.digest}
    fields = {"source": "upload", "upload_weight": up_w.digest, "upload_tensor": "w", **change}
    settings = DataSettings(**fields)
    with pytest.raises(UploadError, match=fragment):
        make_sample_data(settings, uploads={u.digest: u for u in (up_w, up_x)})


def test_weight_candidates_cap_each_side_and_explain_when_none_fit():
    tensors = {"wide": torch.zeros(1, synthetic.MAX_FEATURES + 1), "ok": torch.zeros(2, 3),
               "vec": torch.zeros(4), "cube": torch.zeros(2, 2, 2)}
    assert weight_candidates(tensors) == {"ok": (2, 3)}
    with pytest.raises(UploadError, match="side over 8192"):
        weight_candidates({"wide": tensors["wide"]})
    with pytest.raises(UploadError, match=r"no 2-D .* tensors: vec \[4\]"):
        weight_candidates({"vec": tensors["vec"]})


def test_split_rows_caps_by_available_rows():
    x = torch.arange(10.0).reshape(10, 1)
    assert [b.shape[0] for b in split_rows(x, 4, 3)] == [3, 3, 3, 1]
    assert [b.shape[0] for b in split_rows(x, 2, 3)] == [3, 3]


# --- MiniLM (a small fake of its file) ------------------------------------------------------


def test_minilm_layer_has_real_weight_and_real_activations(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert "minilm" in sources.available_sources()
    settings = DataSettings(source="minilm", minilm_layer="encoder.layer.1.output.dense",
                            num_batches=2, batch_size=4)
    data = make_sample_data(settings)
    weight, _ = minilm.load_minilm_linear("encoder.layer.1.output.dense")
    assert torch.equal(data.weight, weight)
    assert [b.shape for b in data.calibration] == [(4, 1536), (4, 1536)]
    assert data.eval_batch.shape == (512, 1536)
    assert float(data.calibration[0].min()) >= -0.2  # GELU outputs: real, not synthetic
    assert fixed_shape(settings) == (384, 1536) and data.settings.in_features == 1536
    with pytest.raises(ValueError, match="unknown minilm_layer"):
        make_sample_data(DataSettings(source="minilm", minilm_layer="encoder.layer.9.x"))
    with pytest.raises(ValueError, match="unknown minilm_layer"):  # the pooler is not used
        make_sample_data(DataSettings(source="minilm", minilm_layer="pooler.dense"))


def test_minilm_is_not_offered_without_its_weights(monkeypatch):
    monkeypatch.setattr(minilm, "minilm_safetensors_path", lambda: None)
    monkeypatch.delenv("QUANT_EXPLORER_MODEL_DIR", raising=False)
    assert sources.available_sources() == ("synthetic", "digits", "upload")
    assert fixed_shape(DataSettings(source="minilm")) is None


# --- validation and links -------------------------------------------------------------------


@pytest.mark.parametrize(("change", "fragment"), [
    ({"source": "cloud"}, "unknown source 'cloud'; valid choices: 'synthetic'"),
    ({"model_layer": "fc9"}, "unknown model_layer 'fc9'"),
    ({"minilm_layer": "../../etc/passwd"}, "minilm_layer"),
    ({"upload_weight": "abc"}, "upload_weight must be a SHA-256"),
    ({"upload_inputs": 5}, "upload_inputs must be a string"),
    ({"upload_tensor": "a\nb"}, "upload_tensor must be a printable"),
], ids=["source", "layer", "minilm-path", "digest", "digest-type", "tensor-name"])
def test_bad_source_settings_name_the_field(change, fragment):
    with pytest.raises(ValueError, match=fragment):
        check_source_settings(DataSettings(**change))


def test_links_carry_the_source_but_never_upload_bytes():
    settings = DataSettings(source="upload", upload_weight="a" * 64, upload_tensor="fc.weight")
    state = SharedState(VALID_YAML, VALID_YAML, None, settings)
    params = encode_state(state)
    assert decode_state(params).settings == settings
    digits = SharedState(VALID_YAML, VALID_YAML, None,
                         DataSettings(source="digits", model_layer="fc3"))
    assert decode_state(encode_state(digits)).settings.model_layer == "fc3"


@pytest.mark.parametrize(("data", "fragment"), [
    ({"source": "cloud"}, "source"),
    ({"source": 3}, "must be text"),
    ({"model_layer": "fc0"}, "model_layer"),
    ({"upload_weight": "not-a-digest"}, "upload_weight"),
    ({"minilm_layer": "x/../y"}, "minilm_layer"),
], ids=["source", "source-type", "layer", "digest", "minilm"])
def test_links_with_bad_source_settings_are_refused(data, fragment):
    doc = {"v": 1, "weight": VALID_YAML, "outputs": VALID_YAML, "activation": None,
           "data": data}
    with pytest.raises(ShareError, match=fragment):
        decode_state({"s": link_token(yaml.safe_dump(doc))})


# --- sidebar callbacks on a plain dict ------------------------------------------------------


@pytest.fixture
def state() -> dict:
    state: dict = {}
    S.init_state(state)
    return state


def test_weight_upload_callback_keeps_the_previous_weight_on_a_bad_file(state):
    good = npy_bytes(np.ones((3, 4), dtype=np.float32))
    assert data_panel.accept_weight_upload(state, "w.npy", good)
    digest = state[S.data_key("upload_weight")]
    assert digest == sources.digest_bytes(good) and state[S.data_key("upload_tensor")] == "w"
    for name, data, fragment in (
        ("trunc.npy", good[:-5], "truncated"),
        ("bool.npy", npy_bytes(np.ones((2, 2), dtype=bool)), "boolean"),
        ("vec.npy", npy_bytes(np.ones(5, dtype=np.float32)), "no 2-D"),
        ("nan.npy", npy_bytes(np.full((2, 2), np.nan, dtype=np.float32)), "NaN/Inf"),
        ("junk.pt", b"PK\x03\x04junk", "not a valid torch.save file"),
    ):
        assert not data_panel.accept_weight_upload(state, name, data)
        assert fragment in state[DS.UPLOAD_WEIGHT_ERROR] and name in state[DS.UPLOAD_WEIGHT_ERROR]
        assert state[S.data_key("upload_weight")] == digest  # the previous data stays
        assert state[DS.UPLOAD_WEIGHT].filename == "w.npy"


def test_input_upload_callback_checks_the_weight_width(state):
    data_panel.accept_weight_upload(state, "w.npy", npy_bytes(np.ones((3, 4), np.float32)))
    assert not data_panel.accept_input_upload(state, "x.npy",
                                              npy_bytes(np.ones((9, 5), np.float32)))
    assert "in_features=4" in state[DS.UPLOAD_INPUT_ERROR]
    assert state[S.data_key("upload_inputs")] == ""
    assert data_panel.accept_input_upload(state, "x.npy", npy_bytes(np.ones((9, 4), np.float32)))
    assert state[DS.UPLOAD_INPUT_ERROR] is None and state[DS.UPLOAD_INPUTS].filename == "x.npy"
    data_panel.forget_upload(state, "inputs")
    assert state[DS.UPLOAD_INPUTS] is None and state[S.data_key("upload_inputs")] == ""


def test_back_to_synthetic_restores_the_synthetic_shape(state):
    state[DS.SYNTHETIC_SHAPE] = (96, 64)
    state[S.data_key("in_features")], state[S.data_key("out_features")] = 256, 128
    state[S.data_key("source")] = "synthetic"
    data_panel.on_source_change(state)
    assert (state[S.data_key("in_features")], state[S.data_key("out_features")]) == (96, 64)


def test_back_to_synthetic_without_a_saved_shape_uses_the_default(state):
    state[S.data_key("in_features")], state[S.data_key("out_features")] = 256, 128
    data_panel.on_source_change(state)
    assert (state[S.data_key("in_features")], state[S.data_key("out_features")]) == (768, 768)
    state[S.data_key("source")] = "digits"
    state[S.data_key("in_features")] = 64
    data_panel.on_source_change(state)  # to a real source: the shape is left to the sidebar
    assert state[S.data_key("in_features")] == 64
