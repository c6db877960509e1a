"""`QuantConfig`: one tensor's quantization recipe, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from quantlib.bit_type import BitType
from quantlib.errors import ConfigError, show_value

#: The modes every format and observer takes (tests and widgets iterate over these).
CALIBRATION_MODES = ("layer_wise", "channel_wise")
#: One scale per block of ``block_size`` values: its own rules (see `QuantConfig`).
BLOCK_WISE = "block_wise"
ALL_CALIBRATION_MODES = (*CALIBRATION_MODES, BLOCK_WISE)
QUANTIZATION_METHODS = ("Uniform", "Affine")
OBSERVER_TYPES = (
    "MinmaxObserver",
    "EmaMinmaxObserver",
    "PercentileObserver",
    "OmseObserver",
    "KLObserver",
)
MIN_KL_BINS, MAX_KL_BINS = 16, 65536
MIN_BLOCK_SIZE, MAX_BLOCK_SIZE = 2, 8192
#: Observers that make sense per block: a block's scale comes from its own amax.
BLOCK_OBSERVERS = ("MinmaxObserver", "EmaMinmaxObserver")
#: Observers for FP8 per tensor / per channel: all (OMSE scores the FP8 grid, KL groups its
#: histogram by the grid's own levels).
FP8_OBSERVERS = OBSERVER_TYPES


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class QuantConfig:
    """How to quantize one tensor (weight, output or input activation).

    - ``calibration_mode``: ``layer_wise`` (one scale), ``channel_wise`` (one per channel)
      or ``block_wise`` (one per ``block_size`` consecutive values along the input
      dimension: the weight's ``in``, the last axis of outputs and inputs).
    - ``bit_type``: the element format (`BitType`): int<b>/uint<b>, fp8_e4m3, fp8_e5m2,
      mxfp8_e4m3, mxfp8_e5m2, mxfp6_e2m3, mxfp6_e3m2, mxfp4, mxint8 or nvfp4.
    - ``observer_type``: which range estimator runs during calibration.
    - ``quantization_method``: ``Uniform`` (symmetric) or ``Affine`` (asymmetric).
    - ``percentile_alpha``: PercentileObserver keeps [1-alpha, alpha] quantiles.
    - ``kl_bins``: histogram bins for KLObserver.
    - ``ema_momentum``: EmaMinmaxObserver keeps ``m * old + (1 - m) * batch``.
    - ``omse_steps``: clip candidates OmseObserver tries between 0 and the full range.
    - ``block_size``: values per scale with ``block_wise`` (2..8192; MX formats need 32 and
      NVFP4 16, the default for them); None otherwise.

    Rules: MX and NVFP4 need ``block_wise``; float formats are ``Uniform`` only; block_wise
    takes MinmaxObserver or EmaMinmaxObserver; FP8 takes every observer (KL searches the
    FP8 grid's own levels).
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
    block_size: int | None = None

    def __post_init__(self) -> None:
        _check_choice("calibration_mode", self.calibration_mode, ALL_CALIBRATION_MODES)
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
        self._check_format()

    def _check_format(self) -> None:
        """The format/granularity/method/observer combination rules (see the class doc)."""
        bit_type, mode = self.bit_type, self.calibration_mode
        spec = bit_type.format
        if spec.block_size is not None:
            if mode != "block_wise":
                raise ConfigError(
                    f"{bit_type.name} needs calibration_mode block_wise (one scale per "
                    f"{spec.block_size} values), got {mode}", "calibration_mode")
            if self.block_size is None:
                self.block_size = spec.block_size
            elif self.block_size != spec.block_size:
                raise ConfigError(f"{bit_type.name} needs block_size {spec.block_size}, got "
                                  f"{show_value(self.block_size)}", "block_size")
        if mode == "block_wise":
            if self.block_size is None:
                raise ConfigError(
                    f"calibration_mode block_wise needs block_size: an integer from "
                    f"{MIN_BLOCK_SIZE} to {MAX_BLOCK_SIZE} (e.g. 32 or 128)", "block_size")
            _check_int("block_size", self.block_size, MIN_BLOCK_SIZE, MAX_BLOCK_SIZE)
            if self.observer_type not in BLOCK_OBSERVERS:
                raise ConfigError(
                    f"{self.observer_type} does not apply to block_wise (each block's scale "
                    f"comes from its own amax); choose one of {', '.join(BLOCK_OBSERVERS)}",
                    "observer_type")
        elif self.block_size is not None:
            raise ConfigError(
                f"applies to calibration_mode block_wise only (got {mode}); remove "
                "block_size or set calibration_mode: block_wise", "block_size")
        if bit_type.is_float and not self.is_symmetric:
            raise ConfigError(
                f"{bit_type.name} is a symmetric float format: use Uniform (Affine applies to "
                "integer formats)", "quantization_method")

    @property
    def is_channel_wise(self) -> bool:
        return self.calibration_mode == "channel_wise"

    @property
    def is_block_wise(self) -> bool:
        return self.calibration_mode == "block_wise"

    @property
    def is_symmetric(self) -> bool:
        return self.quantization_method == "Uniform"

    def to_dict(self) -> dict:
        """Plain YAML-ready dict, fields in declaration order, except that ``block_size``
        follows ``calibration_mode`` and is left out when None."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, BitType):
                value = {"bits": value.bits, "signed": value.signed, "name": value.name}
            if f.name == "block_size":
                continue
            out[f.name] = value
            if f.name == "calibration_mode" and self.block_size is not None:
                out["block_size"] = self.block_size
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
