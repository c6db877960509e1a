"""Hostile tensor uploads under the size cap: each is refused quickly, before the parser (or
the float32 copy) does work proportional to what the file claims, with an `UploadError`."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import safetensors.torch
import torch

from explorer.data import upload_limits, uploads
from explorer.data.uploads import UploadError, load_tensors
from tests.reliability.hostile_uploads import HOSTILE_UPLOADS, zip_with_entries

ROOT = Path(__file__).resolve().parents[2]
# Refused before the parser runs: the parser is replaced by a tripwire in the test below.
BEFORE_PARSING = {"long-list-pt", "long-list-legacy-pt", "many-tensors-safetensors",
                  "huge-shape-safetensors", "oversized-header-safetensors", "many-entries-zip",
                  "lying-count-zip", "big-pickle-pt", "deflated-zip-pt"}


@pytest.fixture(scope="module")
def hostile_files():
    return {name: make(1) for name, (make, _, _) in HOSTILE_UPLOADS.items()}


@pytest.mark.parametrize("case", sorted(HOSTILE_UPLOADS))
def test_hostile_upload_is_refused_quickly_with_a_clear_error(case, hostile_files, monkeypatch):
    _, filename, fragment = HOSTILE_UPLOADS[case]
    data = hostile_files[case]
    assert len(data) <= uploads.MAX_UPLOAD_BYTES
    if case in BEFORE_PARSING:
        def tripwire(*args, **kwargs):
            raise AssertionError(f"{case}: the parser ran")

        monkeypatch.setattr(torch, "load", tripwire)
        monkeypatch.setattr(safetensors.torch, "load", tripwire)
    start = time.perf_counter()
    with pytest.raises(UploadError) as info:
        load_tensors(data, filename)
    seconds = time.perf_counter() - start
    assert fragment in str(info.value)
    assert str(info.value).startswith(repr(filename))
    assert seconds < 2.0, f"{case} took {seconds:.2f} s"


def test_the_caps_are_live_just_under_them(monkeypatch):
    """Controls: files just under each cap still load (so the refusals above are the caps)."""
    monkeypatch.setattr(upload_limits, "MAX_UPLOAD_TENSORS", 50)
    monkeypatch.setattr(upload_limits, "MAX_ZIP_ENTRIES", 66)
    monkeypatch.setattr(upload_limits, "MAX_PICKLE_OPS", 5000)
    many = {f"t{i}": torch.full((2,), float(i)) for i in range(50)}
    assert len(load_tensors(safetensors.torch.save(many), "ok.safetensors")) == 50
    buf = io.BytesIO()
    torch.save(many, buf)
    assert len(load_tensors(buf.getvalue(), "ok.pt")) == 50
    many["t50"] = torch.ones(2)
    with pytest.raises(UploadError, match="51 tensors; the limit is 50"):
        load_tensors(safetensors.torch.save(many), "over.safetensors")
    buf = io.BytesIO()
    torch.save(many, buf)
    with pytest.raises(UploadError, match="entries|opcodes|tensors"):
        load_tensors(buf.getvalue(), "over.pt")


def test_a_views_of_its_own_storage_are_accepted():
    """Slices of a bigger storage and tied float32 weights are real checkpoints: accepted."""
    base = torch.arange(64.0).reshape(8, 8)
    buf = io.BytesIO()
    torch.save({"top": base[:4], "tied.a": base, "tied.b": base, "col": base[:, 1]}, buf)
    got = load_tensors(buf.getvalue(), "views.pt")
    assert torch.equal(got["col"], base[:, 1]) and torch.equal(got["tied.b"], base)


def test_zip_entry_count_ignores_a_lying_end_record():
    assert upload_limits.count_zip_entries(zip_with_entries(300), "'z.pt'") == 300
    with pytest.raises(UploadError, match="has more than 4,112 entries"):
        upload_limits.count_zip_entries(
            zip_with_entries(upload_limits.MAX_ZIP_ENTRIES + 1, claimed=3), "'z.pt'")


def test_worst_hostile_upload_stays_under_200_mb_and_2_s(tmp_path):
    """Peak RSS growth per file, measured in a child process (`/proc/self/status` VmHWM,
    reset between files). The child holds each file's bytes before the reset."""
    paths = []
    for name, (make, filename, _) in HOSTILE_UPLOADS.items():
        path = tmp_path / f"{name}--{filename}"
        path.write_bytes(make(1))
        paths.append(str(path))
    done = subprocess.run([sys.executable, "-m", "tests.reliability.hostile_uploads", *paths],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(rows) == len(HOSTILE_UPLOADS)
    for row in rows:
        assert row["outcome"] != "accepted", row
        assert row["seconds"] < 2.0 and row["peak_mib"] < 200, row
