"""A link's state is read strictly: duplicate keys, characters outside base64url, a cut or
extended zlib stream are refused, and errors quote at most a short piece of what it says."""

from __future__ import annotations

import base64
import zlib

import pytest

from explorer.share.link import ShareError, decode_state, encode_state
from tests.helpers import link_token

GOOD = ("v: 1\nweight: 'observer_type: MinmaxObserver'\noutputs: 'kl_bins: 256'\n"
        "activation: null\ndata: {seed: 7}\n")


def test_the_good_state_decodes():
    state = decode_state({"s": link_token(GOOD)})
    assert state.settings.seed == 7 and state.outputs_yaml == "kl_bins: 256"
    assert decode_state(encode_state(state)) == state


@pytest.mark.parametrize("text,fragment", [
    (GOOD + "weight: 'observer_type: KLObserver'\n", "repeats the key 'weight'"),
    (GOOD.replace("{seed: 7}", "{seed: 7, seed: 9}"), "repeats the key 'seed'"),
    (GOOD + "v: 1\n", "repeats the key 'v'"),
], ids=["top-level", "in-data", "version"])
def test_duplicate_keys_are_refused(text, fragment):
    with pytest.raises(ShareError, match=fragment):
        decode_state({"s": link_token(text)})


def _packed(text: str) -> bytes:
    return zlib.compress(text.encode())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@pytest.mark.parametrize("token", [
    link_token(GOOD) + "!!",
    link_token(GOOD) + "%00",
    link_token(GOOD)[:20] + " " + link_token(GOOD)[20:],
    link_token(GOOD) + ".extra",
    _b64(_packed(GOOD) + b"trailing junk after the stream"),
    _b64(_packed(GOOD) + _packed("v: 2\n")),
    _b64(_packed(GOOD)[:-6]),
], ids=["bangs", "percent", "space", "dot-suffix", "bytes-after-stream", "second-stream",
        "cut-stream"])
def test_trailing_junk_and_damage_are_refused(token):
    with pytest.raises(ShareError, match="damaged"):
        decode_state({"s": token})


HUGE = "z" * 30_000
MAX_MESSAGE_CHARS = 400  # explorer.share.link.MAX_MESSAGE_CHARS


@pytest.mark.parametrize("text", [
    GOOD.replace("activation: null", f"activation: null\nactivation_enabled: '{HUGE}'"),
    GOOD.replace("{seed: 7}", f"{{seed: '{HUGE}'}}"),
    GOOD.replace("{seed: 7}", f"{{weight_source: '{HUGE}'}}"),
    GOOD.replace("{seed: 7}", f"{{{HUGE}: 1}}"),
    GOOD.replace("{seed: 7}", "{" + ", ".join(f"k{i}{HUGE[:900]}: 1" for i in range(20)) + "}"),
    GOOD.replace("'kl_bins: 256'", f"'kl_bins: {HUGE}'"),
    GOOD.replace("'kl_bins: 256'", f"'{HUGE}: 1'"),
], ids=["activation-enabled", "integer-setting", "choice-setting", "unknown-setting",
        "many-unknown-settings", "field-value", "field-name"])
def test_errors_quote_huge_values_shortened(text):
    with pytest.raises(ShareError) as info:
        decode_state({"s": link_token(text)})
    message = str(info.value)
    assert len(message) <= MAX_MESSAGE_CHARS and "z" * 200 not in message, message[:500]
