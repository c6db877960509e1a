"""Safe tensor uploads: file bytes in, float32 tensors out (no Streamlit here).

Accepted formats (by file extension):

- ``.safetensors``: every tensor in the file (``safetensors.torch.load``).
- ``.npy``: one array, named after the file's stem (``numpy.load(allow_pickle=False)``).
- ``.pt`` / ``.pth``: ``torch.save`` of a tensor, or of a (nested) dict/list of tensors such as a
  state dict or checkpoint, read with ``torch.load(weights_only=True)``; nested names are
  dotted (``{"model": {"fc.weight": t}}`` -> ``"model.fc.weight"``) and non-tensor leaves
  (epoch numbers, strings) are skipped.

Nothing is ever unpickled beyond what ``weights_only=True`` allows (tensors and plain
containers): a file that needs any other Python object is refused, never executed.

Dtypes: every tensor comes back as float32. Floating types (float16/bfloat16/float64/float8)
are cast; integer types (int8-int64, uint8-uint64) are cast too, since integer weights or
pixel data are still numbers (exact up to 2**24). bool, complex, quantized, sparse, string,
object and structured data are refused.

Limits, each checked before the step it protects:

- the file size (`MAX_UPLOAD_BYTES`), before anything is parsed;
- the structure, before the parser runs (`explorer.data.upload_limits`): a ``.safetensors``
  header of at most `MAX_SAFETENSORS_HEADER` bytes listing at most `MAX_UPLOAD_TENSORS`
  tensors and `MAX_UPLOAD_ELEMENTS` values (read from the JSON header); a zip-format ``.pt``
  of at most `MAX_ZIP_ENTRIES` entries (counted in its central directory) whose pickle has at
  most `MAX_PICKLE_BYTES` bytes and `MAX_PICKLE_OPS` opcodes (walked with
  ``pickletools.genops``, which executes nothing; the legacy format's pickles too);
- after loading, before any copy: at most `MAX_UPLOAD_TENSORS` tensors (containers walked at
  most `MAX_NESTING` deep and `MAX_PICKLE_OPS` items in all), no meta or nested tensor, no
  tensor larger than the storage it views (an ``expand``-ed view would materialise far more
  than the file holds), and at most `MAX_UPLOAD_ELEMENTS` values in all.

Every problem raises `UploadError` (a ``ValueError``) naming the file and what is accepted.
"""

from __future__ import annotations

import io
import math
import pickle
import re
import warnings
import zipfile
from pathlib import PurePath

import numpy as np
import torch

from explorer.data import upload_limits as limits
from explorer.data.upload_limits import (
    ACCEPTED,
    MAX_UPLOAD_ELEMENTS,
    UploadError,
    _first_line,
    _mib,
)

__all__ = [
    "ACCEPTED_EXTENSIONS",
    "MAX_UPLOAD_BYTES",
    "MAX_UPLOAD_ELEMENTS",
    "UploadError",
    "check_calibration_inputs",
    "load_tensors",
    "pick_weight",
]

MAX_UPLOAD_BYTES = 200 * 2**20
MAX_NESTING = 16
ACCEPTED_EXTENSIONS = (".safetensors", ".npy", ".pt", ".pth")
_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
               torch.uint16, torch.uint32, torch.uint64)


def load_tensors(data: bytes, filename: str) -> dict[str, torch.Tensor]:
    """Parse an uploaded file -> ``{name: float32 CPU tensor}`` (see the module docstring)."""
    shown = _shown_name(filename)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"{shown}: data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(f"{shown}: the file is {_mib(len(data))}; the limit is "
                          f"{_mib(MAX_UPLOAD_BYTES)}")
    suffix = PurePath(str(filename)).suffix.lower()
    if suffix not in ACCEPTED_EXTENSIONS:
        raise UploadError(f"{shown}: unsupported file type {suffix or '(no extension)'!r}; "
                          f"upload {ACCEPTED}")
    if not data:
        raise UploadError(f"{shown}: the file is empty; upload {ACCEPTED}")
    if suffix == ".safetensors":
        raw = _read_safetensors(data, shown)
    elif suffix == ".npy":
        raw = {PurePath(str(filename)).stem or "array": _read_npy(data, shown)}
    else:
        raw = _read_torch(data, shown, PurePath(str(filename)).stem or "tensor")
    if not raw:
        raise UploadError(f"{shown}: the file holds no tensors; upload {ACCEPTED}")
    if len(raw) > limits.MAX_UPLOAD_TENSORS:
        raise UploadError(f"{shown}: the file holds {len(raw):,} tensors; the limit is "
                          f"{limits.MAX_UPLOAD_TENSORS:,}")
    for name, t in raw.items():
        _check_materialisable(t, f"{shown}: tensor {_shown_tensor(name)}")
    total = sum(t.numel() for t in raw.values())
    if total > MAX_UPLOAD_ELEMENTS:
        raise UploadError(f"{shown}: the file holds {total:,} values; the limit is "
                          f"{MAX_UPLOAD_ELEMENTS:,}")
    _check_shared_storage(raw, shown)
    return {name: _to_float32(t, f"{shown}: tensor {_shown_tensor(name)}")
            for name, t in raw.items()}


def pick_weight(tensors: dict[str, torch.Tensor], name: str | None = None) -> torch.Tensor:
    """The weight ``tensors[name]`` as float32 [out_features, in_features].

    ``name=None`` picks the only non-empty 2-D tensor. Errors list the 2-D candidates.
    """
    candidates = {n: t for n, t in tensors.items() if t.dim() == 2 and t.numel() > 0}
    listed = _listing(candidates) or "none"
    if name is None:
        if len(candidates) != 1:
            what = "no" if not candidates else f"{len(candidates)}"
            raise UploadError(f"{what} 2-D tensors [out_features, in_features] in the upload; "
                              f"choose a weight by name. 2-D candidates: {listed}; all tensors: "
                              f"{_listing(tensors) or 'none'}")
        name = next(iter(candidates))
    if name not in tensors:
        raise UploadError(f"no tensor named {name!r} in the upload; 2-D candidates: {listed}")
    weight = tensors[name]
    if weight.dim() != 2 or weight.numel() == 0:
        raise UploadError(f"tensor {name!r} has shape {list(weight.shape)}; a weight must be a "
                          f"non-empty 2-D [out_features, in_features]. 2-D candidates: {listed}")
    if not weight.is_floating_point():
        raise UploadError(f"tensor {name!r} is {weight.dtype}; a weight must be floating point")
    _check_finite(weight, f"tensor {name!r}")
    return weight.detach().float().contiguous()


def check_calibration_inputs(x: torch.Tensor, in_features: int) -> torch.Tensor:
    """Uploaded calibration inputs -> float32 [rows, in_features].

    ``x`` must be [rows, in_features] or [..., in_features] (leading dims are flattened into
    rows, e.g. [batch, tokens, in] -> [batch * tokens, in]); 1-D or empty input, a last
    dimension other than ``in_features``, or NaN/Inf raise `UploadError`.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"calibration inputs must be a torch.Tensor, got {type(x).__name__}")
    if isinstance(in_features, bool) or not isinstance(in_features, int) or in_features < 1:
        raise ValueError(f"in_features must be a positive integer, got {in_features!r}")
    shape = list(x.shape)
    if x.dim() < 2:
        raise UploadError(f"calibration inputs have shape {shape}; they must be 2-D "
                          f"[rows, in_features={in_features}] (or [..., {in_features}])")
    if shape[-1] != in_features:
        hint = (" (it looks transposed; save x.T)"
                if x.dim() == 2 and shape[0] == in_features else "")
        raise UploadError(f"calibration inputs have shape {shape}; the last dimension must be "
                          f"the layer's in_features={in_features}{hint}")
    if x.numel() == 0:
        raise UploadError(f"calibration inputs have shape {shape}: no rows")
    x = _to_float32(x, "calibration inputs")
    _check_finite(x, "calibration inputs")
    return x.reshape(-1, in_features).contiguous()


# --- readers ---------------------------------------------------------------------------------


def _read_safetensors(data: bytes, shown: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    limits.check_safetensors_header(data, shown, MAX_UPLOAD_ELEMENTS)
    try:
        return dict(load(data))
    except Exception as err:  # noqa: BLE001 - any parse failure is a bad upload
        raise UploadError(f"{shown}: not a valid .safetensors file ({_first_line(err)}); "
                          f"upload {ACCEPTED}") from None


def _read_npy(data: bytes, shown: str) -> torch.Tensor:
    fmt = np.lib.format
    stream = io.BytesIO(data)
    try:
        version = fmt.read_magic(stream)
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else \
            fmt.read_array_header_2_0
        shape, _, dtype = read_header(stream)
    except Exception as err:  # noqa: BLE001 - a bad magic string or header
        raise UploadError(f"{shown}: not a valid .npy file ({_first_line(err)}); "
                          f"upload {ACCEPTED}") from None
    _check_dtype_kind(dtype.kind, str(dtype), shown)
    if dtype.hasobject or dtype.kind not in "fiu":
        raise UploadError(f"{shown}: the array's dtype {dtype} is not numeric; only float and "
                          "integer arrays are accepted (no object, string or structured data)")
    needed = stream.tell() + math.prod(shape) * dtype.itemsize
    if len(data) < needed:
        raise UploadError(f"{shown}: the file is truncated: its header promises a {dtype} array "
                          f"of shape {list(shape)} ({needed:,} bytes) but the file has "
                          f"{len(data):,} bytes")
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as err:  # noqa: BLE001 - defensive: anything numpy rejects
        raise UploadError(f"{shown}: not a valid .npy file ({_first_line(err)})") from None
    target = np.float64 if array.dtype.kind == "f" and array.dtype.itemsize > 8 else \
        array.dtype.newbyteorder("=")  # long double has no torch dtype
    native = np.ascontiguousarray(array, dtype=target)
    return torch.from_numpy(native)


def _read_torch(data: bytes, shown: str, stem: str) -> dict[str, torch.Tensor]:
    if data.startswith(b"PK"):  # torch.save's zip format (the legacy format is a raw pickle)
        _check_torch_zip(data, shown)
    else:
        limits.check_pickles(data, shown, legacy=True)
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": noise for users
            warnings.simplefilter("ignore")
            obj = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as err:
        needs = re.search(r"GLOBAL ([\w.]+)", str(err))
        what = f" ({needs.group(1)})" if needs else ""
        raise UploadError(f"{shown}: refused: the file contains Python objects other than "
                          f"tensors{what}, and uploads are never unpickled; save only tensors "
                          f"or a dict of tensors (e.g. model.state_dict())") from None
    except Exception as err:  # noqa: BLE001 - any parse failure is a bad upload
        raise UploadError(f"{shown}: not a valid torch.save file ({_first_line(err)}); "
                          f"upload {ACCEPTED}") from None
    out: dict[str, torch.Tensor] = {}
    _flatten(obj, "", out, 0, shown)
    if isinstance(obj, torch.Tensor):
        out = {stem: out[""]}
    return out


def _check_torch_zip(data: bytes, shown: str) -> None:
    """torch.save writes uncompressed (stored) entries; refuse anything else (zip bombs).

    The entries are counted in the central directory before `zipfile` reads it, and the
    pickle is walked (never run) before `torch.load` sees it."""
    limits.count_zip_entries(data, shown)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise UploadError(f"{shown}: not a valid torch.save file: the zip archive is truncated "
                          f"or corrupt ({err}); upload {ACCEPTED}") from None
    if any(i.compress_type != zipfile.ZIP_STORED for i in infos):
        raise UploadError(f"{shown}: the zip archive is compressed; torch.save files never "
                          "are, so this is not a torch.save file")
    if sum(i.file_size for i in infos) > len(data):
        raise UploadError(f"{shown}: the zip entries claim more data than the file holds")
    try:
        bad = archive.testzip()  # CRC of every entry
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        bad = str(err)
    if bad is not None:
        raise UploadError(f"{shown}: not a valid torch.save file: the zip archive is corrupt "
                          f"({_first_line(ValueError(bad))} fails its checksum)")
    pickles = [i for i in infos if i.filename.endswith("data.pkl")]
    if len(pickles) != 1:
        raise UploadError(f"{shown}: not a valid torch.save file: the zip archive has "
                          f"{len(pickles)} data.pkl records, not 1; upload {ACCEPTED}")
    if pickles[0].file_size > limits.MAX_PICKLE_BYTES:
        raise UploadError(f"{shown}: the file's pickle is {_mib(pickles[0].file_size)}; the "
                          f"limit is {_mib(limits.MAX_PICKLE_BYTES)} (save only tensors or a dict "
                          "of tensors)")
    limits.check_pickles(archive.read(pickles[0]), shown, legacy=False)


def _flatten(obj: object, prefix: str, out: dict[str, torch.Tensor], depth: int,
             shown: str, visited: list[int] | None = None) -> None:
    """Collect the tensors under dotted names. Shared containers are walked once per
    reference, so the walk is capped (`MAX_PICKLE_OPS` items): a list holding the same list
    twice, 16 levels deep, is a few opcodes but 65,536 paths."""
    visited = [0] if visited is None else visited
    visited[0] += 1
    if visited[0] > limits.MAX_PICKLE_OPS or len(out) > limits.MAX_UPLOAD_TENSORS:
        cap = min(limits.MAX_PICKLE_OPS, limits.MAX_UPLOAD_TENSORS)
        raise UploadError(f"{shown}: the containers hold more than {cap:,} items or tensors "
                          "(counting each shared container once per reference)")
    if depth > MAX_NESTING:
        raise UploadError(f"{shown}: containers nest deeper than {MAX_NESTING} levels")
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
        return
    if isinstance(obj, dict):
        items = [(str(k), v) for k, v in obj.items()]
    elif isinstance(obj, (list, tuple)):
        items = [(str(i), v) for i, v in enumerate(obj)]
    else:  # numbers, strings, None: metadata such as an epoch count
        return
    for key, value in items:
        _flatten(value, f"{prefix}.{key}" if prefix else key, out, depth + 1, shown, visited)


# --- checks ----------------------------------------------------------------------------------


def _check_materialisable(t: torch.Tensor, what: str) -> None:
    """Refuse tensors that hold no data (meta), that numel/layout checks cannot handle
    (nested), or that view a storage smaller than themselves: ``torch.zeros(1).expand(n)``
    saves 4 bytes of data yet copies to ``4 * n`` bytes."""
    if t.is_nested:
        raise UploadError(f"{what}: nested tensors are not accepted; save each tensor on its "
                          "own")
    if t.is_meta or t.device.type != "cpu":
        raise UploadError(f"{what}: a {t.device.type} tensor holds no values here; save a CPU "
                          "tensor with data (t.cpu())")
    if t.layout != torch.strided:
        return  # refused with its layout by _to_float32
    needed = t.numel() * t.element_size()
    available = t.untyped_storage().nbytes()
    if needed > available:
        raise UploadError(f"{what}: shape {list(t.shape)} views only {available:,} bytes of "
                          f"data (a broadcast or expand-ed view); it would take "
                          f"{needed:,} bytes. Save t.contiguous() or t.clone()")


def _check_shared_storage(raw: dict[str, torch.Tensor], shown: str) -> None:
    """Refuse views that reuse the same data many times: the float32 copies may take at most
    4x the bytes the file's storages hold (an int8 file, cast), plus 1 MiB. 1,000 float16
    views of one 128 KiB storage would otherwise copy to 256 MiB."""
    stored: dict[int, int] = {}
    for t in raw.values():
        if t.layout == torch.strided:
            storage = t.untyped_storage()
            stored[storage.data_ptr()] = max(stored.get(storage.data_ptr(), 0),
                                             storage.nbytes())
    held = sum(stored.values())
    needed = 4 * sum(t.numel() for t in raw.values())
    if needed > 4 * held + 2**20:
        raise UploadError(f"{shown}: the tensors view the same data many times: as float32 "
                          f"they would take {_mib(needed)} from {_mib(held)} of data. Save "
                          "each tensor once (t.clone())")


def _to_float32(t: torch.Tensor, what: str) -> torch.Tensor:
    if t.layout != torch.strided:
        raise UploadError(f"{what}: {t.layout} tensors are not accepted; save a dense tensor "
                          "(t.to_dense())")
    if t.is_quantized:
        raise UploadError(f"{what}: quantized tensors ({t.dtype}) are not accepted; save "
                          "t.dequantize()")
    if t.dtype == torch.bool or t.dtype.is_complex:
        _check_dtype_kind("b" if t.dtype == torch.bool else "c", str(t.dtype), what)
    if not (t.dtype.is_floating_point or t.dtype in _INT_DTYPES):
        raise UploadError(f"{what}: dtype {t.dtype} is not accepted; use a float or integer "
                          "tensor")
    return t.detach().to(device="cpu", dtype=torch.float32).contiguous()


def _check_dtype_kind(kind: str, dtype: str, what: str) -> None:
    if kind == "b":
        raise UploadError(f"{what}: boolean data ({dtype}) is not accepted; use float (or "
                          "integer) values")
    if kind == "c":
        raise UploadError(f"{what}: complex data ({dtype}) is not accepted; use real values")


def _check_finite(t: torch.Tensor, what: str) -> None:
    if t.numel() and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise UploadError(f"{what} contain(s) {bad:,} NaN/Inf value(s); quantization needs "
                          "finite values")


def _listing(tensors: dict[str, torch.Tensor], limit: int = 20) -> str:
    parts = [f"{_shorten(n)} {list(t.shape)}" for n, t in list(tensors.items())[:limit]]
    if len(tensors) > limit:
        parts.append(f"... ({len(tensors) - limit} more)")
    return ", ".join(parts)


def _shown_name(filename: object) -> str:
    name = PurePath(str(filename)).name or "upload"
    return repr(name if len(name) <= 80 else f"{name[:77]}...")


def _shorten(name: str, limit: int = 80) -> str:
    return name if len(name) <= limit else f"{name[:limit - 3]}..."


def _shown_tensor(name: str) -> str:
    return repr(_shorten(name))
