"""Issue 14 in the Whole model figures: nothing overlaps, the axes stop at 100 %."""

from __future__ import annotations

from explorer.model.summary import (
    WholeModelSummary,
    make_accuracy_comparison_figure,
    make_sensitivity_figure,
)


def _summary(fp32=0.972, quantized=0.95, sensitivity=None) -> WholeModelSummary:
    return WholeModelSummary(seed=0, layers=(), fp32_accuracy=fp32, quantized_accuracy=quantized,
                             num_calibration_rows=1, num_eval_rows=1,
                             sensitivity=sensitivity or {"fc1": 0.969, "fc2": 1.0, "fc3": 0.5})


def test_sensitivity_labels_sit_on_the_axis_and_lines_in_the_legend():
    fig = make_sensitivity_figure(_summary())
    layout = fig.layout
    assert layout.yaxis.range[1] == 100.0 and layout.yaxis.range[0] == 45.0
    assert not layout.annotations  # no text on the plot area
    assert list(layout.xaxis.ticktext) == ["fc1<br>96.9 %", "fc2<br>100.0 %", "fc3<br>50.0 %"]
    assert all(not trace.text for trace in fig.data)  # no label on or above a bar
    assert [s.y0 for s in layout.shapes] == [97.2, 95.0]
    legend = [t.name for t in fig.data if t.showlegend is not False]
    assert "fp32: 97.2 %" in legend and "all layers quantized: 95.0 %" in legend


def test_comparison_axis_stops_at_100():
    fig = make_accuracy_comparison_figure([("a", _summary()), ("b", _summary(quantized=1.0))])
    assert fig.layout.yaxis.range[1] == 100.0 and not fig.layout.annotations
    assert list(fig.layout.xaxis.ticktext) == ["a<br>95.0 %", "b<br>100.0 %"]
