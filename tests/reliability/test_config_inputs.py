"""Config text and files (issue 13, items 7 and 8): YAML 1.1 number forms that would change a
value silently are refused naming the field; special files are never read; an error about a
file that is not a config does not echo its content."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from quantlib.config_loader import (
    ConfigError,
    load_config_from_string,
    load_config_from_yaml,
    parse_section,
)

ROOT = Path(__file__).resolve().parents[2]
OUTPUTS = "outputs:\n  observer_type: MinmaxObserver\n"


@pytest.mark.parametrize("body,path,form", [
    ("bit_type: {bits: 010}", "weight.bit_type.bits", "octal"),          # 8 in YAML 1.1
    ("bit_type:\n  bits: 0012", "weight.bit_type.bits", "octal"),        # 10
    ("bit_type: {bits: -07}", "weight.bit_type.bits", "octal"),
    ("kl_bins: 02000", "weight.kl_bins", "octal"),                       # 1024
    ("kl_bins: !!int 0400", "weight.kl_bins", "octal"),                  # explicit tag too
    ("kl_bins: 17:4", "weight.kl_bins", "base-60"),                      # 1024
    ("kl_bins: 1:8:16", "weight.kl_bins", "base-60"),                    # 4096
    ("bit_type: {bits: 1:0}", "weight.bit_type.bits", "base-60"),        # 60
    ("percentile_alpha: 0:0.99", "weight.percentile_alpha", "base-60"),  # a float, base 60
])
def test_yaml11_number_forms_are_refused_naming_the_field(body, path, form):
    with pytest.raises(ConfigError) as info:
        parse_section(body, "weight")
    assert info.value.path == path and f"YAML 1.1 {form}" in str(info.value)
    document = "weight:\n" + "".join(f"  {line}\n" for line in body.splitlines()) + OUTPUTS
    with pytest.raises(ConfigError, match=f"^{path}: .*YAML 1.1 {form}"):
        load_config_from_string(document)


@pytest.mark.parametrize("body,field,value", [
    ("bit_type: {bits: 10}", "bits", 10), ("kl_bins: 2048", "kl_bins", 2048),
    ("kl_bins: 0x800", "kl_bins", 2048), ("kl_bins: +1024", "kl_bins", 1024),
    ("percentile_alpha: 0.995", "percentile_alpha", 0.995),
    ("bit_type: {bits: 8, name: '010'}", "bits", 8),  # a quoted string is no number
], ids=["decimal", "decimal-kl", "hex-explicit", "plus-sign", "float", "quoted-name"])
def test_plain_numbers_still_load(body, field, value):
    config = parse_section(body, "weight")
    got = config.bit_type.bits if field == "bits" else getattr(config, field)
    assert got == value


@pytest.mark.parametrize("path", ["/proc/kmsg", "/proc/self/status", "/sys/kernel/mm"])
def test_special_files_are_refused_without_being_opened(path, monkeypatch):
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing on this Linux machine")

    def tripwire(*args, **kwargs):
        raise AssertionError(f"{path} was opened")

    monkeypatch.setattr(os, "open", tripwire)
    monkeypatch.setattr(Path, "open", tripwire)
    with pytest.raises(ConfigError, match="size of 0|not a regular file"):
        load_config_from_yaml(path)


def test_an_empty_regular_file_still_says_the_document_is_empty(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_bytes(b"")
    with pytest.raises(ConfigError, match="the document is empty"):
        load_config_from_yaml(empty)


SECRET = "sk_live_0123456789abcdefXYZ"


@pytest.mark.parametrize("text", [
    f"{SECRET}: 1\n",
    f"API_TOKEN: {SECRET}\nOTHER: 2\n",
    f"{SECRET}:\n  nested: true\n",
    f"? {SECRET}\n",
], ids=["key", "env-style", "mapping", "complex-key"])
def test_a_file_that_is_not_a_config_is_not_echoed(tmp_path, text):
    path = tmp_path / ".env.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config_from_yaml(path)
    assert SECRET not in str(info.value) and "API_TOKEN" not in str(info.value)
    assert "not a quantization config" in str(info.value)
    out = tmp_path / "r.html"
    proc = subprocess.run([sys.executable, "-m", "explorer.report", "--config", str(path),
                           "-o", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and SECRET not in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and not out.exists()


def test_a_typo_in_a_section_name_is_still_named_but_shortened():
    with pytest.raises(ConfigError, match=r"unknown section 'wieght' \(did you mean 'weight'"):
        load_config_from_string("wieght: {}\n" + OUTPUTS)
    long_key = "w" * 900  # implicit YAML keys stop at 1024 characters
    with pytest.raises(ConfigError) as info:
        load_config_from_string(f"weight: {{}}\n{long_key}: 1\n" + OUTPUTS)
    assert len(str(info.value)) < 300
