"""`QuantConfig`: one tensor's quantization recipe, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from quantlib.bit_type import BitType
from quantlib.errors import ConfigError, show_value

CALIBRATION_MODES = ("layer_wise", "channel_wise")
QUANTIZATION_METHODS = ("Uniform", "Affine")
OBSERVER_TYPES = (
    "MinmaxObserver",
    "EmaMinmaxObserver",
    "PercentileObserver",
    "OmseObserver",
    "KLObserver",
)
MIN_KL_BINS, MAX_KL_BINS = 16, 65536


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class QuantConfig:
    """How to quantize one tensor (weight, output or input activation).

    - ``calibration_mode``: ``layer_wise`` (one scale) or ``channel_wise`` (one per channel).
    - ``observer_type``: which range estimator runs during calibration.
    - ``quantization_method``: ``Uniform`` (symmetric) or ``Affine`` (asymmetric).
    - ``percentile_alpha``: PercentileObserver keeps [1-alpha, alpha] quantiles.
    - ``kl_bins``: histogram bins for KLObserver.
    - ``ema_momentum``: EmaMinmaxObserver keeps ``m * old + (1 - m) * batch``.
    - ``omse_steps``: clip candidates OmseObserver tries between 0 and the full range.
    """

    calibration_mode: str = "layer_wise"
    bit_type: BitType = field(default_factory=BitType)
    observer_type: str = "MinmaxObserver"
    quantization_method: str = "Uniform"
    percentile_alpha: float = 0.9999
    kl_bins: int = 2048
    enable_profiler: bool = True
    ema_momentum: float = 0.9
    omse_steps: int = 100

    def __post_init__(self) -> None:
        _check_choice("calibration_mode", self.calibration_mode, CALIBRATION_MODES)
        _check_choice("observer_type", self.observer_type, OBSERVER_TYPES)
        _check_choice("quantization_method", self.quantization_method, QUANTIZATION_METHODS)
        if not isinstance(self.bit_type, BitType):
            raise ConfigError(f"must be a BitType, got {show_value(self.bit_type)}", "bit_type")
        if not _is_number(self.percentile_alpha) or not 0.5 < self.percentile_alpha <= 1.0:
            raise ConfigError(
                "must be a number in (0.5, 1.0], e.g. 0.9999; "
                f"got {show_value(self.percentile_alpha)}",
                "percentile_alpha",
            )
        _check_int("kl_bins", self.kl_bins, MIN_KL_BINS, MAX_KL_BINS)
        _check_int("omse_steps", self.omse_steps, 2, 1000)
        if not isinstance(self.enable_profiler, bool):
            raise ConfigError(
                f"must be true or false, got {show_value(self.enable_profiler)}", "enable_profiler"
            )
        if not _is_number(self.ema_momentum) or not 0.0 <= self.ema_momentum < 1.0:
            raise ConfigError(
                f"must be a number in [0, 1), e.g. 0.9; got {show_value(self.ema_momentum)}",
                "ema_momentum",
            )
        self.percentile_alpha = float(self.percentile_alpha)
        self.ema_momentum = float(self.ema_momentum)

    @property
    def is_channel_wise(self) -> bool:
        return self.calibration_mode == "channel_wise"

    @property
    def is_symmetric(self) -> bool:
        return self.quantization_method == "Uniform"

    def to_dict(self) -> dict:
        """Plain YAML-ready dict, fields in declaration order."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, BitType):
                value = {"bits": value.bits, "signed": value.signed, "name": value.name}
            out[f.name] = value
        return out


FIELD_NAMES = tuple(f.name for f in fields(QuantConfig))
BIT_TYPE_FIELDS = ("bits", "signed", "name")


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(
            f"{show_value(value)} is not valid; choose one of {', '.join(choices)}", name)


def _check_int(name: str, value: object, low: int, high: int) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok or not low <= value <= high:
        raise ConfigError(
            f"must be an integer from {low} to {high}, got {show_value(value)}", name)
