"""Compare view with number formats: the format sets, Pareto front, bits-per-element sweeps."""

from __future__ import annotations

import math

import pytest

from explorer.compare import figures as CF
from explorer.compare import runs as C
from explorer.compare.formats import FORMAT_SETS, needs_bits_per_element, pareto_front
from explorer.core.pipeline import DataSettings
from explorer.data.sources import make_sample_data
from quantlib.config_loader import load_config_from_string

DATA = DataSettings(in_features=256, out_features=64, num_batches=1, batch_size=32)


def test_pareto_front_keeps_the_undominated():
    points = {"a": (4.125, 20.0), "b": (4.25, 19.0), "c": (4.5, 21.0), "d": (8.0, 21.0),
              "e": (math.nan, 50.0)}
    assert pareto_front(points) == ["a", "c"]


@pytest.mark.parametrize("name", list(FORMAT_SETS))
def test_format_sets_run_and_floats_are_single_points(name):
    data = make_sample_data(DATA)
    runs = {entry: C.run_config(load_config_from_string(text), data, (2, 4, 8))
            for entry, text in FORMAT_SETS[name]}
    assert needs_bits_per_element([r.configs for r in runs.values()])
    for run in runs.values():
        float_format = run.configs["weight"].bit_type.is_float
        assert len(run.sweep.bits) == (1 if float_format else 3)
        assert len(run.sweep.weight_bpe) == len(run.sweep.bits)
        assert run.tensors["weight"].bits_per_element in run.sweep.weight_bpe or not float_format
    expected = {"MXFP4": 4.25, "INT4 g128": 4.25, "INT4 per channel": 4.0 + 32 / 256}
    for entry, bpe in expected.items():
        if entry in runs:
            assert runs[entry].tensors["weight"].bits_per_element == pytest.approx(bpe)
    colors = CF.config_colors(runs)
    chosen = {n: {t: r.tensors[t].config.bit_type.bits for t in C.TENSORS}
              for n, r in runs.items()}
    sweep = CF.make_sweep_figure({n: r.sweep for n, r in runs.items()}, chosen, colors, True)
    assert "bits per element" in sweep.layout.xaxis.title.text
    pareto = CF.make_pareto_figure(runs, colors)
    assert {t.name for t in pareto.data} >= set(runs)


def test_a_transform_entry_is_skipped_by_profiled():
    configs = load_config_from_string(FORMAT_SETS["FP8 vs INT8"][0][1])
    marker = object()
    out = C.profiled({**configs, "transform": marker})
    assert out["transform"] is marker and out["weight"].enable_profiler


def test_outlier_fixes_set_beats_round_to_nearest_on_outlier_inputs():
    data = make_sample_data(DataSettings(in_features=256, out_features=64, num_batches=4,
                                         batch_size=128,
                                         input_source="LLM-like outlier features"))
    runs = {entry: C.run_config(load_config_from_string(text), data, (4,))
            for entry, text in FORMAT_SETS["Outlier fixes"]}
    assert runs["RTN"].configs["transform"] is None
    assert runs["GPTQ"].configs["transform"].weight_algorithm == "gptq"
    output = {entry: run.tensors["output"].qsnr for entry, run in runs.items()}
    # Per-tensor int8 inputs with outlier features: moving (SmoothQuant) or spreading
    # (rotation) the outliers gains several dB over round to nearest.
    assert output["SmoothQuant"] > output["RTN"] + 3, output
    assert output["Rotation"] > output["RTN"] + 2, output
