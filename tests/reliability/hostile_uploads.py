"""Hostile tensor uploads under the size cap, built at any scale, and a peak-memory probe.

`HOSTILE_UPLOADS` maps a case name to ``(make(scale), filename, fragment)``: ``make`` returns
the file's bytes for a scale factor (1 is what the tests use; the benchmark uses the sizes
reported in issue 13), and ``fragment`` is part of the expected `UploadError`.

`measure(paths)` loads each file in a fresh subprocess-friendly way (see `main`) and reports
the seconds and the peak RSS growth of `load_tensors` on it: ``python -m
tests.reliability.hostile_uploads FILE...`` prints one JSON line per file.
"""

from __future__ import annotations

import io
import json
import struct
import sys
import time
import warnings
import zlib

import torch


def _torch_bytes(obj, **kwargs) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(obj, buf, **kwargs)
    return buf.getvalue()


def long_list_pt(items: int, legacy: bool = False) -> bytes:
    """A weight next to a Python list of ``items`` small ints (about 2 opcodes each)."""
    return _torch_bytes({"w": torch.ones(4, 4), "steps": list(range(items))},
                        _use_new_zipfile_serialization=not legacy)


def many_tensors_safetensors(count: int) -> bytes:
    """``count`` one-element float32 tensors; the header is written by hand (fast)."""
    entries = ",".join(f'"t{i}":{{"dtype":"F32","shape":[1],"data_offsets":[{4 * i},'
                       f'{4 * i + 4}]}}' for i in range(count))
    header = ("{" + entries + "}").encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + b"\0" * (4 * count)


def huge_shape_safetensors(values: int) -> bytes:
    """A header promising ``values`` float32 values while the file holds 16 bytes."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [values],
                               "data_offsets": [0, 4 * values]}}).encode()
    return struct.pack("<Q", len(header)) + header + b"\0" * 16


def oversized_header_safetensors(claimed: int) -> bytes:
    """The 8-byte length field claims a ``claimed``-byte JSON header."""
    return struct.pack("<Q", claimed) + b"{" + b" " * 64


def zip_with_entries(count: int, claimed: int | None = None) -> bytes:
    """A stored zip of ``count`` empty ``x<i>.pt`` entries, written by hand (zip64 when
    needed). ``claimed`` overrides the entry count the end record states (a lying count)."""
    local, central, offset = [], [], 0
    for i in range(count):
        name = f"x{i}.pt".encode()
        header = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0,
                             len(name), 0) + name
        local.append(header)
        central.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0,
                                   len(name), 0, 0, 0, 0, 0, offset) + name)
        offset += len(header)
    directory = b"".join(central)
    total = count if claimed is None else claimed
    tail = b""
    if total > 0xFFFF:
        record = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, total, total,
                             len(directory), offset)
        tail = record + struct.pack("<4sLQL", b"PK\x06\x07", 0, offset + len(directory), 1)
    short = min(total, 0xFFFF)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, short, short, len(directory), offset, 0)
    return b"".join(local) + directory + tail + end


def expanded_view_pt(values: int) -> bytes:
    """A 4-byte storage viewed as ``values`` elements (stride 0): about 1.5 KB on disk."""
    return _torch_bytes({"w": torch.ones(1).expand(values)})


def shared_view_pt(copies: int) -> bytes:
    """One float16 storage of 64 Ki values (128 KiB) viewed ``copies`` times: each view fits
    its storage, but each float32 cast copies 256 KiB."""
    base = torch.ones(256, 256, dtype=torch.float16)
    return _torch_bytes({f"v{i}": base.view(256, 256) for i in range(copies)})


def shared_list_dag_pt(width: int) -> bytes:
    """Lists that hold the same list ``width`` times, 8 levels deep: ``width ** 8`` paths to one
    tensor in a file of a few KB."""
    node: object = torch.ones(2, 2)
    for _ in range(8):
        node = [node] * width
    return _torch_bytes(node)


def big_pickle_pt(nbytes: int) -> bytes:
    """A weight next to an ``nbytes``-long bytes object inside the pickle."""
    return _torch_bytes({"w": torch.ones(4, 4), "blob": b"x" * nbytes})


def meta_pt(_: int) -> bytes:
    return _torch_bytes({"w": torch.empty(64, 64, device="meta")})


def nested_pt(_: int) -> bytes:
    with warnings.catch_warnings():  # "nested tensors are in prototype stage"
        warnings.simplefilter("ignore")
        nested = torch.nested.nested_tensor([torch.ones(2, 3), torch.ones(5, 3)])
    return _torch_bytes({"w": nested})


def pickle_bomb_zip_pt(_: int) -> bytes:
    """A deflated data.pkl that inflates 1000x (torch.save never compresses)."""
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", zlib.compress(b"") + b"\0" * 2_000_000)
    return buf.getvalue()


# name -> (make(scale), filename, fragment of the UploadError). Test values (scale 1) differ
# from issue 13's; `ISSUE_SCALES` gives the issue's sizes for the benchmark.
HOSTILE_UPLOADS = {
    "long-list-pt": (lambda k: long_list_pt(300_000 * k), "steps.pt",
                     "opcodes"),
    "long-list-legacy-pt": (lambda k: long_list_pt(300_000 * k, legacy=True), "steps.pth",
                            "opcodes"),
    "many-tensors-safetensors": (lambda k: many_tensors_safetensors(20_000 * k),
                                 "many.safetensors", "tensors; the limit is 4,096"),
    "huge-shape-safetensors": (lambda k: huge_shape_safetensors(2**27 * k), "shape.safetensors",
                               "values; the limit is"),
    "oversized-header-safetensors": (lambda k: oversized_header_safetensors(2**30 * k),
                                     "header.safetensors", "header is 1,073,741,824 bytes"),
    "many-entries-zip": (lambda k: zip_with_entries(70_000 * k), "entries.pt",
                         "entries; torch.save files"),
    "lying-count-zip": (lambda k: zip_with_entries(20_000 * k, claimed=2), "lying.pt",
                        "has more than 4,112 entries"),
    "expanded-view-pt": (lambda k: expanded_view_pt(2**25 * k), "expand.pt",
                         "expand-ed view"),
    "shared-views-pt": (lambda k: shared_view_pt(600 * k), "views.pt",
                        "view the same data many times"),
    "shared-list-dag-pt": (lambda k: shared_list_dag_pt(4 * k), "dag.pt",
                           "counting each shared container once per reference"),
    "big-pickle-pt": (lambda k: big_pickle_pt(17 * 2**20 * k), "blob.pt",
                      "the limit is 16.0 MiB"),
    "meta-tensor-pt": (meta_pt, "meta.pt", "meta tensor holds no values"),
    "nested-tensor-pt": (nested_pt, "nested.pt", "nested tensors are not accepted"),
    "deflated-zip-pt": (pickle_bomb_zip_pt, "deflated.pt", "compressed"),
}

# Issue 13's sizes: a 15M-item list, 1M tensors, 1M zip entries, a 256 MiB expand.
ISSUE_SCALES = {"long-list-pt": 50, "long-list-legacy-pt": 50, "many-tensors-safetensors": 50,
                "many-entries-zip": 15, "lying-count-zip": 50, "expanded-view-pt": 2}


def _peak_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as refs:  # "5": reset VmHWM to the current RSS
        refs.write("5")


def main(paths: list[str]) -> None:
    """For each file: seconds and peak RSS growth (MiB) of `load_tensors`, as JSON lines."""
    from explorer.data.uploads import UploadError, load_tensors

    load_tensors(_torch_bytes({"w": torch.ones(2, 2)}), "warm.pt")  # lazy imports, allocator
    for path in paths:
        with open(path, "rb") as file:
            data = file.read()
        name = path.rsplit("/", 1)[-1].split("--", 1)[-1]
        _reset_peak()
        before = _peak_kib()
        start = time.perf_counter()
        try:
            load_tensors(data, name)
            outcome = "accepted"
        except UploadError as err:
            outcome = str(err)
        seconds = time.perf_counter() - start
        grown = (_peak_kib() - before) / 1024
        print(json.dumps({"file": name, "bytes": len(data), "seconds": seconds,
                          "peak_mib": grown, "outcome": outcome}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
