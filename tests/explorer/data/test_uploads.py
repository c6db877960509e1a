"""Safe uploads: every format round-trips, and nothing unsafe or malformed gets through."""

import io
import os
import pickle
import shlex
import zipfile

import numpy as np
import pytest
import torch
from safetensors.torch import save as save_safetensors

from explorer.data import uploads
from explorer.data.uploads import UploadError, check_calibration_inputs, load_tensors, pick_weight
from tests.helpers import npy_bytes

WEIGHT = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
BIAS = torch.randn(6, generator=torch.Generator().manual_seed(1))


def torch_bytes(obj, **kwargs) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, **kwargs)
    return buf.getvalue()


def assert_same(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for name, tensor in expected.items():
        assert got[name].dtype == torch.float32
        assert torch.equal(got[name], tensor.float()), name


# --- round trips -----------------------------------------------------------------------------


def test_safetensors_round_trip():
    data = save_safetensors({"fc.weight": WEIGHT, "fc.bias": BIAS})
    assert_same(load_tensors(data, "layer.safetensors"), {"fc.weight": WEIGHT, "fc.bias": BIAS})


def test_npy_round_trip_is_named_after_the_file():
    assert_same(load_tensors(npy_bytes(WEIGHT.numpy()), "my_weight.NPY"), {"my_weight": WEIGHT})


@pytest.mark.parametrize("dtype", [">f4", "<f8", "f2", "i1", "u1", "i8", "u2"])
def test_npy_numeric_dtypes_and_byte_orders_become_float32(dtype):
    array = np.arange(12).reshape(3, 4).astype(dtype)
    got = load_tensors(npy_bytes(np.asfortranarray(array)), "a.npy")["a"]
    assert got.dtype == torch.float32 and torch.equal(got, torch.arange(12.0).reshape(3, 4))


@pytest.mark.parametrize("suffix", [".pt", ".pth"])
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_torch_tensor_round_trip(suffix, legacy):
    data = torch_bytes(WEIGHT, _use_new_zipfile_serialization=not legacy)
    assert_same(load_tensors(data, f"w{suffix}"), {"w": WEIGHT})


def test_torch_nested_checkpoint_is_flattened_to_dotted_names():
    model = torch.nn.Linear(4, 6)
    checkpoint = {"model": model.state_dict(), "epoch": 3, "note": "hi",
                  "ema": [WEIGHT.half(), {"x": BIAS}]}
    got = load_tensors(torch_bytes(checkpoint), "ckpt.pth")
    expected = {"model.weight": model.weight.detach(), "model.bias": model.bias.detach(),
                "ema.0": WEIGHT.half(), "ema.1.x": BIAS}
    assert_same(got, expected)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64, torch.int8, torch.int32])
def test_float_and_integer_dtypes_are_cast_to_float32(dtype):
    tensor = torch.arange(-4, 4).to(dtype).reshape(2, 4)
    got = load_tensors(save_safetensors({"t": tensor}), "t.safetensors")["t"]
    assert got.dtype == torch.float32 and torch.equal(got, tensor.float())


# --- refusals --------------------------------------------------------------------------------


class Bomb:
    """Unpickling this runs a shell command that creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(self.marker)}",))


def bomb_bytes(marker, wrap: str) -> bytes:
    payload = {"weight": WEIGHT, "evil": Bomb(marker)}
    return torch_bytes(payload) if wrap == "torch.save" else pickle.dumps(payload)


@pytest.mark.parametrize("wrap", ["torch.save", "plain-pickle"])
def test_pickle_bomb_is_refused_without_running_it(tmp_path, wrap):
    marker = tmp_path / "PWNED"
    with pytest.raises(UploadError, match=r"evil\.pt.*refused.*never unpickled") as info:
        load_tensors(bomb_bytes(marker, wrap), "evil.pt")
    if wrap == "torch.save":  # the message names the object the file asked for
        assert "posix.system" in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("wrap", ["torch.save", "plain-pickle"])
def test_the_pickle_bomb_is_live(tmp_path, wrap):
    """Control for the test above: an unsafe load really would run the payload."""
    marker = tmp_path / "PWNED"
    data = bomb_bytes(marker, wrap)
    if wrap == "torch.save":
        torch.load(io.BytesIO(data), weights_only=False)
    else:
        pickle.loads(data)  # noqa: S301 - deliberately unsafe, on our own payload
    assert marker.exists()


def test_oversize_file_is_refused_before_parsing(monkeypatch):
    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 100)
    called = []
    monkeypatch.setattr(uploads, "_read_npy", lambda *a: called.append(a))
    with pytest.raises(UploadError, match=r"'big\.npy'.*limit is"):
        load_tensors(npy_bytes(np.zeros(100, dtype=np.float32)), "big.npy")
    assert called == []


def test_too_many_values_are_refused(monkeypatch):
    monkeypatch.setattr(uploads, "MAX_UPLOAD_ELEMENTS", 10)
    with pytest.raises(UploadError, match="11 values"):
        load_tensors(npy_bytes(np.zeros(11, dtype=np.int8)), "x.npy")


@pytest.mark.parametrize("filename", ["w.pkl", "w.npz", "weights", "w.safetensors.txt"])
def test_unknown_extensions_list_what_is_accepted(filename):
    with pytest.raises(UploadError, match=r"unsupported file type.*\.safetensors.*\.npy.*\.pt"):
        load_tensors(b"anything", filename)


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


SAFE = save_safetensors({"w": WEIGHT})
NPY = npy_bytes(WEIGHT.numpy())
PT = torch_bytes({"w": WEIGHT})


@pytest.mark.parametrize(("data", "filename", "message"), [
    (b"", "w.pt", "empty"),
    (_truncated(SAFE), "w.safetensors", "not a valid .safetensors file"),
    (b"\x00" * 64, "w.safetensors", "not a valid .safetensors file"),
    (NPY[:-10], "w.npy", "truncated"),
    (NPY[:30], "w.npy", "not a valid .npy file"),
    (b"PK\x03\x04" + b"\x00" * 40, "w.pt", "truncated or corrupt"),
    (_truncated(PT), "w.pt", "not a valid torch.save file"),
    (b"hello world", "w.pth", "not a valid torch.save file"),
], ids=["empty", "safetensors-truncated", "safetensors-garbage", "npy-truncated",
        "npy-header-cut", "zip-garbage", "pt-truncated", "pt-garbage"])
def test_malformed_files_give_clear_errors(data, filename, message):
    with pytest.raises(UploadError, match=message) as info:
        load_tensors(data, filename)
    assert repr(filename) in str(info.value)


def test_corrupted_torch_zip_entry_fails_its_checksum():
    start = PT.index(WEIGHT.numpy().tobytes()[:16])  # inside the stored tensor bytes
    corrupt = bytearray(PT)
    corrupt[start] ^= 0xFF
    with pytest.raises(UploadError, match="checksum"):
        load_tensors(bytes(corrupt), "w.pt")


def test_compressed_zip_is_not_a_torch_file():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", b"\x00" * 10_000)
    with pytest.raises(UploadError, match="compressed"):
        load_tensors(buf.getvalue(), "bomb.pt")


@pytest.mark.parametrize(("array", "message"), [
    (np.array([True, False]), "boolean"),
    (np.array([1 + 2j]), "complex"),
    (np.array(["a", "b"]), "not numeric"),
    (np.zeros(2, dtype=[("a", "f4")]), "not numeric"),
    (np.array([None, 1], dtype=object), "not numeric"),
], ids=["bool", "complex", "string", "structured", "object"])
def test_non_numeric_npy_is_refused(array, message):
    with pytest.raises(UploadError, match=message):
        load_tensors(npy_bytes(array), "a.npy")


@pytest.mark.parametrize(("tensor", "message"), [
    (torch.ones(2, dtype=torch.bool), "boolean"),
    (torch.ones(2, dtype=torch.complex64), "complex"),
    (torch.eye(3).to_sparse(), "sparse"),
], ids=["bool", "complex", "sparse"])
def test_non_numeric_torch_tensors_are_refused(tensor, message):
    with pytest.raises(UploadError, match=message):
        load_tensors(torch_bytes({"t": tensor}), "t.pt")


def test_a_file_without_tensors_is_refused():
    with pytest.raises(UploadError, match="no tensors"):
        load_tensors(torch_bytes({"epoch": 3}), "meta.pt")


def test_absurd_nesting_is_refused():
    nested: object = WEIGHT
    for _ in range(40):
        nested = {"x": nested}
    with pytest.raises(UploadError, match="nest deeper"):
        load_tensors(torch_bytes(nested), "deep.pt")


# --- pick_weight and check_calibration_inputs --------------------------------------------------


def test_pick_weight_by_name_or_the_only_2d_tensor():
    tensors = {"fc.weight": WEIGHT, "fc.bias": BIAS}
    assert torch.equal(pick_weight(tensors, "fc.weight"), WEIGHT)
    assert torch.equal(pick_weight(tensors), WEIGHT)


@pytest.mark.parametrize(("tensors", "name", "message"), [
    ({"a": WEIGHT, "b": WEIGHT.T}, None, r"2 2-D tensors.*a \[6, 4\], b \[4, 6\]"),
    ({"bias": BIAS}, None, r"no 2-D tensors.*all tensors: bias \[6\]"),
    ({"w": WEIGHT, "bias": BIAS}, "bias", r"shape \[6\].*2-D candidates: w \[6, 4\]"),
    ({"w": WEIGHT}, "missing", r"no tensor named 'missing'.*w \[6, 4\]"),
    ({"w": torch.ones(2, 2, dtype=torch.int64)}, "w", "floating point"),
    ({"w": torch.tensor([[1.0, float("inf")]])}, "w", "1 NaN/Inf"),
], ids=["ambiguous", "none-2d", "not-2d", "missing", "integer", "non-finite"])
def test_pick_weight_errors_list_the_candidates(tensors, name, message):
    with pytest.raises(UploadError, match=message):
        pick_weight(tensors, name)


def test_calibration_inputs_are_checked_and_flattened():
    x = torch.randn(2, 5, 4)
    got = check_calibration_inputs(x, 4)
    assert got.shape == (10, 4) and torch.equal(got, x.reshape(10, 4))
    assert check_calibration_inputs(torch.ones(3, 4, dtype=torch.float64), 4).dtype == \
        torch.float32


@pytest.mark.parametrize(("x", "message"), [
    (torch.ones(4), "1-D|must be 2-D"),
    (torch.ones(3, 5), "in_features=4"),
    (torch.ones(4, 7), "transposed"),
    (torch.ones(0, 4), "no rows"),
    (torch.tensor([[0.0, 1.0, float("nan"), 2.0]]), "NaN/Inf"),
    (torch.ones(2, 4, dtype=torch.bool), "boolean"),
], ids=["1d", "wrong-features", "transposed", "empty", "nan", "bool"])
def test_bad_calibration_inputs_are_refused(x, message):
    with pytest.raises(UploadError, match=message):
        check_calibration_inputs(x, 4)
