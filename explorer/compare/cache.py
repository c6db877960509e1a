"""The Compare tab's caches (no Streamlit): per-config runs, bit-width sweeps and clip views.

One entry per config (not per set of configs), so editing one config of a comparison reruns
only that one; identical configs share an entry. Keys are the configs' field values (comment
and whitespace edits hit), the data settings, the upload scope and, for sweeps, the swept
widths. Runs, sweeps and clip views are small; the calibrated layers (kept so a sweep need not
recalibrate) hold their observers' calibration data, so at most `MAX_CONFIGS` of them are kept.
"""

from __future__ import annotations

from collections.abc import Mapping

from explorer.compare.clip import ClipView, clip_view
from explorer.compare.runs import (
    MAX_CONFIGS,
    ConfigRun,
    Sweep,
    calibrate_config,
    calibration_outputs,
    sweep_layer,
)
from explorer.core.cache import store
from explorer.core.pipeline import DataSettings, ProgressCallback, config_key
from explorer.data.cache import SAMPLE_DATA_ENTRIES, Uploads, sample_data, upload_scope
from quantlib.quant_config import QuantConfig

COMPARE_RUN_ENTRIES = 16
COMPARE_VIEW_ENTRIES = 16

Configs = Mapping[str, QuantConfig | None]


def compare_key(configs: Configs, settings: DataSettings, uploads: Uploads | None = None,
                *extra) -> tuple:
    return ("compare", config_key(configs), settings, upload_scope(settings, uploads), *extra)


def lookup_compare(configs: Configs, settings: DataSettings, bits: tuple[int, ...] | None = None,
                   uploads: Uploads | None = None) -> ConfigRun | Sweep | None:
    """The cached run (``bits`` None) or sweep over ``bits``, or None when it must be
    computed."""
    extra = () if bits is None else ("sweep", tuple(bits))
    return _runs().get(compare_key(configs, settings, uploads, *extra))


def compare_run(configs: Configs, settings: DataSettings, progress: ProgressCallback | None = None,
                uploads: Uploads | None = None) -> ConfigRun:
    """One config of the compare view calibrated on ``settings``' data and evaluated
    (`runs.calibrate_config`), cached; its calibrated layer is kept for `compare_sweep`."""
    key = compare_key(configs, settings, uploads)

    def calibrate() -> ConfigRun:
        layer, run = calibrate_config(configs, sample_data(settings, uploads), progress)
        compare_layers().put(key, layer)
        return run

    return _runs().get_or_put(key, calibrate)


def compare_sweep(configs: Configs, settings: DataSettings, bits: tuple[int, ...],
                  progress: ProgressCallback | None = None,
                  uploads: Uploads | None = None) -> Sweep:
    """The bit-width sweep of one config (`runs.sweep_layer`) from its calibrated layer,
    cached; the layer is recalibrated once only if it has left the layer cache."""
    run_key = compare_key(configs, settings, uploads)

    def sweep() -> Sweep:
        data = sample_data(settings, uploads)
        layer = compare_layers().get_or_put(run_key,
                                            lambda: calibrate_config(configs, data)[0])
        return sweep_layer(layer, data.eval_batch, bits, progress)

    return _runs().get_or_put((*run_key, "sweep", tuple(bits)), sweep)


def compare_clip_view(tensor: str, runs: Mapping[str, ConfigRun], settings: DataSettings,
                      channel: int | None, scope: str,
                      uploads: Uploads | None = None) -> ClipView:
    """`clip.clip_view` of the weight or the calibration outputs for ``runs`` (name ->
    `ConfigRun`), keyed by the names, the configs' values, the data settings and the channel."""
    held = upload_scope(settings, uploads)
    key = ("clip view", tensor, settings, held, channel,
           tuple((name, config_key(run.configs)) for name, run in runs.items()))

    def view() -> ClipView:
        data = sample_data(settings, uploads)
        if tensor == "weight":
            values, axis = data.weight, 0
        else:
            outputs = store("compare.calibration_outputs", SAMPLE_DATA_ENTRIES)
            values = outputs.get_or_put((settings, held), lambda: calibration_outputs(data))
            axis = -1
        return clip_view(values, {name: run.tensors[tensor] for name, run in runs.items()},
                         axis, channel, scope)

    return store("compare.views", COMPARE_VIEW_ENTRIES).get_or_put(key, view)


def compare_layers():
    """The calibrated layers behind the runs (at most `MAX_CONFIGS`)."""
    return store("compare.layers", MAX_CONFIGS)


def _runs():
    return store("compare.runs", 2 * COMPARE_RUN_ENTRIES)  # runs and sweeps
