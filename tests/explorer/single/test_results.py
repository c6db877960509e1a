"""``explorer.single.results``: the Single layer tab's result and layer caches."""

import dataclasses

import pytest

from explorer.core import cache
from explorer.core.pipeline import DataSettings
from explorer.data.sources import UploadedTensors
from explorer.single import results
from quantlib.bit_type import BitType
from quantlib.config_loader import load_config_from_string

SMALL = DataSettings(in_features=24, out_features=16, num_batches=2, batch_size=16)
DOCUMENT = """\
weight:
  calibration_mode: channel_wise
  bit_type: {bits: 4, signed: true, name: int4}   # keep me
  observer_type: MinmaxObserver
  quantization_method: Uniform
outputs:
  calibration_mode: layer_wise
  bit_type: {bits: 8, signed: true, name: int8}
  observer_type: MinmaxObserver
  quantization_method: Affine
"""


@pytest.fixture(autouse=True)
def empty_caches():
    cache.clear_all()
    yield
    cache.clear_all()


def test_a_comment_only_edit_hits_the_cache_and_a_value_edit_does_not(monkeypatch):
    runs = []
    real = results.run_pipeline
    monkeypatch.setattr(results, "run_pipeline", lambda *a, **k: runs.append(1) or real(*a, **k))
    configs = load_config_from_string(DOCUMENT)
    assert results.lookup_result(configs, SMALL) is None
    first = results.cached_result(configs, SMALL)
    same = load_config_from_string(DOCUMENT.replace("# keep me", "# edited"))
    assert results.cached_result(same, SMALL) is first
    assert results.lookup_result(same, SMALL) is first
    assert len(runs) == 1
    other = {**configs, "weight": dataclasses.replace(configs["weight"], bit_type=BitType(3, True))}
    assert results.cached_result(other, SMALL) is not first
    assert len(runs) == 2


def test_the_calibrated_layer_is_kept_and_rebuilt_only_after_eviction():
    configs = load_config_from_string(DOCUMENT)
    result, _ = results.cached_result(configs, SMALL)
    layer = results.lookup_layer(configs, SMALL)
    assert layer is not None and results.cached_layer(configs, SMALL) is layer
    assert layer.weight_scaler.equal(result.tensors["weight"].scale)
    for bits in range(2, 2 + results.LAYER_ENTRIES):  # push it out of the layer cache
        other = {**configs, "weight": dataclasses.replace(configs["weight"],
                                                          bit_type=BitType(bits + 4, True))}
        results.cached_result(other, SMALL)
    assert results.lookup_layer(configs, SMALL) is None
    rebuilt = results.cached_layer(configs, SMALL)
    assert rebuilt is not layer and rebuilt.weight_scaler.equal(layer.weight_scaler)


def test_results_of_an_upload_are_keyed_by_the_uploads_this_session_holds(tmp_path):
    import numpy as np

    weight = np.random.default_rng(0).standard_normal((16, 24)).astype(np.float32)
    path = tmp_path / "w.npy"
    np.save(path, weight)
    upload = UploadedTensors.from_bytes(path.read_bytes(), "w.npy")
    settings = dataclasses.replace(SMALL, source="upload", upload_weight=upload.digest,
                                   upload_tensor=next(iter(upload.tensors)))
    configs = load_config_from_string(DOCUMENT)
    mine = {upload.digest: upload}
    results.cached_result(configs, settings, mine)
    assert results.lookup_result(configs, settings, mine) is not None
    # another session (holding no such upload) never sees this session's entry
    assert results.lookup_result(configs, settings, {}) is None
    assert results.result_key(configs, settings, mine) != results.result_key(configs, settings)
