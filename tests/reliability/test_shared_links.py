"""What a shared link can do to the session of whoever opens it: no more than load a valid
state. It cannot open the sender's uploaded tensors (a link carries their digests, and the
caches are shared by every session: `explorer.data.cache.upload_scope`), and it cannot put
Markdown (images fetched on opening, links, formatting) into that person's page."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from streamlit.testing.v1 import AppTest

from explorer.core import cache
from explorer.core import state as S
from explorer.data import state as DS
from explorer.single import state as SINGLE
from tests.helpers import chart_titles, link_token, metric_cards, npy_upload, open_app

EXPORT = "share.download_safetensors"


@pytest.fixture(autouse=True)
def fresh_caches():
    cache.clear_all()
    yield
    cache.clear_all()


def weight_charts(at: AppTest) -> list[str]:
    return [t for t in chart_titles(at) if t.startswith("Weight")]


def test_a_link_to_an_uploaded_tensor_does_not_open_it_in_another_open_app():
    secret = np.random.default_rng(0).standard_normal((48, 80)).astype(np.float32)
    owner = open_app(source="upload", num_batches=2, batch_size=32)
    owner.file_uploader(key=DS.UPLOAD_WEIGHT_FILE).set_value(npy_upload("secret.npy", secret)).run()
    assert not owner.exception and not owner.error
    owner.session_state[SINGLE.RESULT_VIEW] = "Error maps"  # its title names the shape
    assert any("(48×80)" in t for t in weight_charts(owner.run()))
    assert EXPORT in {b.key for b in owner.sidebar.get("download_button")}
    token = owner.query_params["s"]  # carries the digest, not the bytes

    # Everything the owner computed is cached under that digest; the other session must not
    # get it: no results, no plots of the weight, no export of its codes.
    other = open_app(token)
    assert any("from the link" in s.value for s in other.success)
    assert [e.value for e in other.error] == [
        "Could not quantize with these settings: the uploaded weight file is no longer in "
        "this session; upload it again"]
    assert not weight_charts(other) and not metric_cards(other)
    assert EXPORT not in {b.key for b in other.sidebar.get("download_button")}
    for tab in ("Compare", "Teach"):  # their caches are keyed the same way
        other.session_state[S.TABS] = tab
        other.run()
        assert not other.exception and other.error, tab
        assert not weight_charts(other), tab

    # Uploading the same file there gives the same numbers (the cache is shared for it).
    other.session_state[S.TABS] = "Single layer"
    other.file_uploader(key=DS.UPLOAD_WEIGHT_FILE).set_value(npy_upload("mine.npy", secret)).run()
    assert not other.exception and not other.error
    assert ([m.value for m in other.metric if m.label == "Weight QSNR"]
            == [m.value for m in owner.metric if m.label == "Weight QSNR"])


PIXEL = "![x](https://tracker.example/t.png)"


@pytest.mark.parametrize("text", [
    f"v: 1\nweight: \"observer_type: '{PIXEL}'\"\noutputs: ''\ndata: {{}}\n",
    f"v: 1\nweight: 'kl_bins: 512'\noutputs: 'kl_bins: 512'\ndata: {{'{PIXEL}': 1}}\n",
    f"v: 1\nweight: \"bit_type: {{bits: 8, name: '{PIXEL}'}}\"\noutputs: ''\ndata: {{}}\n",
], ids=["quoted-in-the-error", "unknown-setting", "bit-type-name"])
def test_a_link_cannot_put_markdown_into_the_page(text):
    at = open_app(link_token(text), in_features=64, out_features=64, num_batches=2, batch_size=32)
    (message,) = [e.value for e in at.error]  # Markdown: what the browser renders
    assert "could not be opened" in message
    assert "tracker.example" in message.replace("\\", "")  # quoted, as plain text
    assert "![" not in message and "](" not in message
    assert "observer_type: MinmaxObserver" in at.text_area(key=S.text_key("weight")).value


@pytest.mark.parametrize("label", [PIXEL, "<a href='https://x.example'>int8</a>", "int 8",
                                   "x" * 33, "int8\u200b"])
def test_links_carry_plain_bit_type_names_only(label):
    from explorer.core.pipeline import DataSettings
    from explorer.share.link import SharedState, ShareError, decode_state, encode_state

    plain = SharedState("bit_type: {bits: 4, name: my_format-4.1}\n", "kl_bins: 512\n", None,
                        DataSettings())
    assert decode_state(encode_state(plain)) == plain
    marked = SharedState(f"bit_type: {{bits: 4, name: {label!r}}}\n", "kl_bins: 512\n", None,
                         DataSettings())
    with pytest.raises(ShareError, match="plain label"):
        encode_state(marked)  # the sidebar says why there is no link
    token = link_token(yaml.safe_dump({"v": 1, "weight": marked.weight_yaml,
                                 "outputs": "kl_bins: 512", "data": {}}))
    with pytest.raises(ShareError, match="plain label"):
        decode_state({"s": token})
