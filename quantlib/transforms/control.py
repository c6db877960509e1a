"""Progress reporting and cancellation for the long-running transforms (GPTQ, AWQ).

- ``progress``: None or a callable taking the fraction done, a float in [0, 1]; it is called
  with non-decreasing values and last with exactly 1.0 when the work completes.
- ``cancel``: None, a ``threading.Event`` (anything with ``is_set()``) or a callable returning
  True to stop. It is polled between blocks of work; when it asks to stop, the transform raises
  ``TransformCancelled`` (nothing partial is returned).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class _EventLike(Protocol):
    def is_set(self) -> bool: ...


Progress = Callable[[float], object]
Cancel = Callable[[], bool] | _EventLike


class TransformCancelled(RuntimeError):
    """The caller's ``cancel`` asked the transform to stop; ``fraction`` is how far it got."""

    def __init__(self, what: str, fraction: float) -> None:
        self.fraction = fraction
        super().__init__(f"{what} cancelled at {fraction:.0%} done")


def is_cancelled(cancel: Cancel | None) -> bool:
    """True when ``cancel`` (None, an Event or a callable) asks to stop."""
    if cancel is None:
        return False
    is_set = getattr(cancel, "is_set", None)
    if callable(is_set):
        return bool(is_set())
    if callable(cancel):
        return bool(cancel())
    raise TypeError(f"cancel must be None, a threading.Event or a callable returning bool, "
                    f"got {type(cancel).__name__}")


def check(cancel: Cancel | None, what: str, fraction: float) -> None:
    """Raise ``TransformCancelled`` when ``cancel`` asks to stop."""
    if is_cancelled(cancel):
        raise TransformCancelled(what, fraction)


def report(progress: Progress | None, fraction: float) -> None:
    """Call ``progress(fraction)`` (clamped to [0, 1]) when given."""
    if progress is not None:
        progress(min(max(float(fraction), 0.0), 1.0))
