"""``explorer.core.panel.run_with_progress``: the bar shows only for work that takes a while."""

from types import SimpleNamespace

import pytest

from explorer.core import panel


class Slot:
    def __init__(self):
        self.calls = []

    def progress(self, fraction, text=""):
        self.calls.append(("progress", fraction, text))

    def empty(self):
        self.calls.append(("empty",))


@pytest.fixture
def slot(monkeypatch):
    made = Slot()
    errors = []
    monkeypatch.setattr(panel, "st", SimpleNamespace(empty=lambda: made,
                                                     error=lambda *a, **k: errors.append(a)))
    made.errors = errors
    return made


def test_fast_work_draws_no_bar(slot):
    def compute(report):
        report(0.5, "half")
        report(1.0, "done")
        return 42

    assert panel.run_with_progress("Working", compute, "job", failed="no") == 42
    assert slot.calls == [("empty",)]  # nothing drawn, the slot cleared


def test_slow_work_shows_the_bar_once_it_has_taken_a_while(slot, monkeypatch):
    clock = iter([0.0, 0.1, panel.SHOW_AFTER_S + 0.01, panel.SHOW_AFTER_S + 0.2])
    monkeypatch.setattr(panel.time, "perf_counter", lambda: next(clock))

    def compute(report):
        report(0.2, "early")        # at 0.1 s: not yet
        report(0.6, "calibrating")  # past SHOW_AFTER_S: drawn
        report(1.5, "")             # clamped to 1, the starting text kept
        return "ok"

    assert panel.run_with_progress("Working", compute, "job", failed="no") == "ok"
    assert slot.calls == [("progress", 0.6, "calibrating"), ("progress", 1.0, "Working"),
                          ("empty",)]


def test_a_rejected_input_shows_the_reason_and_clears_the_bar(slot):
    def compute(report):
        raise ValueError("too large")

    result = panel.run_with_progress("Working", compute, "job", failed="no",
                                     rejected=lambda err: f"refused: {err}")
    assert result is None and slot.errors == [("refused: too large",)]
    assert slot.calls == [("empty",)]
