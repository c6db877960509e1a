"""Upload caps checked before any parser runs (no Streamlit here; used by `uploads`).

A file under the byte cap can still describe far more work than its size: a pickle of a
15M-item list, a safetensors header listing a million tensors, a zip of a million empty
entries. These checks read only the structure (the safetensors JSON header, the zip's central
directory, the pickle's opcodes via ``pickletools.genops``, which executes nothing) and refuse
such files with an `UploadError` before the real parser does that work.
"""

from __future__ import annotations

import io
import json
import math
import pickletools
import struct

MAX_UPLOAD_ELEMENTS = 2**26  # 64 Mi values = 256 MiB as float32
MAX_UPLOAD_TENSORS = 4096  # a BERT-base state dict has about 200
MAX_SAFETENSORS_HEADER = 4 * 2**20  # about 1 KB per tensor at the tensor cap
MAX_ZIP_ENTRIES = MAX_UPLOAD_TENSORS + 16  # torch.save: one entry per storage + a few records
MAX_PICKLE_BYTES = 16 * 2**20
MAX_PICKLE_OPS = 2**18  # torch.save spends about 32 opcodes per tensor of a state dict
ACCEPTED = ("a .safetensors file, a .npy array, or a .pt/.pth file saved with torch.save "
            "(a tensor or a dict of tensors)")


class UploadError(ValueError):
    """An upload that cannot be used; the message names the file and what is accepted."""


_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
_EOCD64_LOCATOR = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_CENTRAL_ENTRY = struct.Struct("<4s6H3L5H2L")


def count_zip_entries(data: bytes, shown: str) -> int:
    """Count the central directory's entries (stopping past `MAX_ZIP_ENTRIES`) without
    building any object per entry; the archive's own count field is not trusted."""
    corrupt = (f"{shown}: not a valid torch.save file: the zip archive is truncated or "
               f"corrupt; upload {ACCEPTED}")
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - _EOCD.size - 65535))
    if end < 0 or end + _EOCD.size > len(data):
        raise UploadError(corrupt)
    *_, claimed, cd_size, _, _ = _EOCD.unpack_from(data, end)
    record = end
    locator = end - _EOCD64_LOCATOR.size
    if locator >= 0 and data[locator:locator + 4] == b"PK\x06\x07":  # zip64
        record = locator - _EOCD64.size
        if record < 0 or data[record:record + 4] != b"PK\x06\x06":
            raise UploadError(corrupt)
        fields = _EOCD64.unpack_from(data, record)
        claimed, cd_size = fields[7], fields[8]
    if claimed > MAX_ZIP_ENTRIES:
        raise UploadError(_too_many_entries(shown, claimed))
    position, stop, count = record - cd_size, record, 0
    if position < 0:
        raise UploadError(corrupt)
    while position < stop:
        if position + _CENTRAL_ENTRY.size > stop or data[position:position + 4] != b"PK\x01\x02":
            raise UploadError(corrupt)
        count += 1
        if count > MAX_ZIP_ENTRIES:
            raise UploadError(_too_many_entries(shown, None))
        fields = _CENTRAL_ENTRY.unpack_from(data, position)
        position += _CENTRAL_ENTRY.size + fields[10] + fields[11] + fields[12]
    return count


def _too_many_entries(shown: str, count: int | None) -> str:
    many = f"{count:,}" if count is not None else f"more than {MAX_ZIP_ENTRIES:,}"
    return (f"{shown}: the zip archive has {many} entries; torch.save files with at most "
            f"{MAX_UPLOAD_TENSORS:,} tensors have at most {MAX_ZIP_ENTRIES:,}")


def check_pickles(data: bytes, shown: str, legacy: bool) -> None:
    """Walk the pickle opcodes (nothing is executed or built) and refuse a pickle over
    `MAX_PICKLE_BYTES` or `MAX_PICKLE_OPS`: a 15M-item list would take a minute and gigabytes
    to unpickle. The legacy format is five pickles followed by raw storage bytes."""
    window = io.BytesIO(memoryview(data)[:MAX_PICKLE_BYTES])
    ops = 0
    for _ in range(5 if legacy else 1):
        if legacy and window.tell() == len(data):
            break  # a plain pickle: torch.load explains what is wrong with it
        try:
            for _ in pickletools.genops(window):
                ops += 1
                if ops > MAX_PICKLE_OPS:
                    raise UploadError(
                        f"{shown}: the file's pickle has more than {MAX_PICKLE_OPS:,} "
                        f"opcodes; torch.save of at most {MAX_UPLOAD_TENSORS:,} tensors has "
                        "far fewer (save only tensors or a dict of tensors, no long lists)")
        except UploadError:
            raise
        except Exception as err:  # noqa: BLE001 - a pickle genops cannot read
            if window.tell() >= MAX_PICKLE_BYTES:
                raise UploadError(f"{shown}: the file's pickle is over "
                                  f"{_mib(MAX_PICKLE_BYTES)}; save only tensors or a dict "
                                  "of tensors") from None
            raise UploadError(f"{shown}: not a valid torch.save file ({_first_line(err)}); "
                              f"upload {ACCEPTED}") from None


def check_safetensors_header(data: bytes, shown: str, max_elements: int) -> None:
    """Read the JSON header and refuse too many tensors or values before any is built."""
    if len(data) < 8:
        raise UploadError(f"{shown}: not a valid .safetensors file (no header); "
                          f"upload {ACCEPTED}")
    (size,) = struct.unpack_from("<Q", data)
    if size > MAX_SAFETENSORS_HEADER:
        raise UploadError(f"{shown}: the .safetensors header is {size:,} bytes; the limit is "
                          f"{MAX_SAFETENSORS_HEADER:,}")
    try:
        header = json.loads(data[8:8 + size])
    except (ValueError, RecursionError):
        raise UploadError(f"{shown}: not a valid .safetensors file (its header is not JSON); "
                          f"upload {ACCEPTED}") from None
    if not isinstance(header, dict):
        raise UploadError(f"{shown}: not a valid .safetensors file (its header is not a JSON "
                          f"object); upload {ACCEPTED}")
    entries = [v for k, v in header.items() if k != "__metadata__"]
    if len(entries) > MAX_UPLOAD_TENSORS:
        raise UploadError(f"{shown}: the file holds {len(entries):,} tensors; the limit is "
                          f"{MAX_UPLOAD_TENSORS:,}")
    total = 0
    for entry in entries:
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if isinstance(shape, list) and all(type(n) is int and n >= 0 for n in shape):
            total += math.prod(shape)  # a malformed entry is the parser's to explain
    if total > max_elements:
        raise UploadError(f"{shown}: the file holds {total:,} values; the limit is "
                          f"{max_elements:,}")


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:200]


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"
