"""Observers: estimate a tensor's range and turn it into qparams. Registered by class name."""

from quantlib.observers.base import OBSERVER_REGISTRY, BaseObserver, build_observer
from quantlib.observers.kl import KLObserver
from quantlib.observers.minmax import EmaMinmaxObserver, MinmaxObserver
from quantlib.observers.omse import OmseObserver
from quantlib.observers.percentile import PercentileObserver

__all__ = [
    "OBSERVER_REGISTRY",
    "BaseObserver",
    "EmaMinmaxObserver",
    "KLObserver",
    "MinmaxObserver",
    "OmseObserver",
    "PercentileObserver",
    "build_observer",
]
