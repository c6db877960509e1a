"""Malformed configs too big or too binary to commit; the tests write them into tmp_path.

`GENERATED_CONFIGS` maps a case name to ``(make_bytes, path, fragments)``: the bytes of the
file, the `ConfigError`'s expected dotted path ("" for the document as a whole) and the
message fragments. tests/data/bad_configs/EXPECTED.yaml indexes the committed cases.
"""

from __future__ import annotations

import random

from quantlib.config_loader import MAX_CONFIG_BYTES

VALID_SECTIONS = b"weight:\n  observer_type: MinmaxObserver\noutputs:\n  kl_bins: 64\n"


def _ten_megabytes() -> bytes:
    """A 10 MB config: valid sections followed by a long run of comment lines."""
    filler = b"# " + b"x" * 77 + b"\n"
    return VALID_SECTIONS + filler * (10 * 1024 * 1024 // len(filler))


def _random_junk() -> bytes:
    rng = random.Random(1234)
    return bytes([0xFF, 0xFE, 0x00]) + bytes(rng.randrange(256) for _ in range(4096))


GENERATED_CONFIGS = {
    "ten_megabytes": (_ten_megabytes, "", ["bytes; the limit is", f"{MAX_CONFIG_BYTES:,}"]),
    "one_byte_over_the_cap": (
        lambda: VALID_SECTIONS + b"#" * (MAX_CONFIG_BYTES - len(VALID_SECTIONS)) + b"\n",
        "", [f"{MAX_CONFIG_BYTES + 1:,} bytes; the limit is"]),
    "random_binary_junk": (_random_junk, "", ["not UTF-8 text"]),
    "elf_header": (lambda: b"\x7fELF\x02\x01\x01\x00" + bytes(56), "", ["binary data"]),
    "gzip_header": (lambda: b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + bytes(20), "",
                    ["not UTF-8 text"]),
    "nul_inside_yaml": (lambda: VALID_SECTIONS.replace(b"MinmaxObserver", b"Minmax\x00"), "",
                        ["binary data"]),
    "latin1_encoded": (lambda: "weight:\n  bit_type: {bits: 8, name: entier_sign\xe9}\n"
                       "outputs: {}\n".encode("latin-1"), "", ["not UTF-8 text"]),
    "utf16_encoded": (lambda: VALID_SECTIONS.decode().encode("utf-16"), "", ["not UTF-8 text"]),
    "truncated_utf8": (lambda: VALID_SECTIONS + "  name: int\u00e9".encode()[:-1], "",
                       ["not UTF-8 text"]),
    "control_character": (lambda: VALID_SECTIONS.replace(b"Minmax", b"Min\x07max"), "",
                          ["invalid YAML", "unacceptable character #x0007"]),
    "nested_5000_deep": (lambda: b"weight: " + b"[" * 5000 + b"]" * 5000 + b"\n", "",
                         ["more than 64 levels deep"]),
}
