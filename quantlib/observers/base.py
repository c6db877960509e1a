"""Observer base class and the name -> class registry."""

from __future__ import annotations

import copy
import dataclasses

import torch

from quantlib.bit_type import BitType
from quantlib.quant_config import OBSERVER_TYPES, QuantConfig
from quantlib.quantizers.functional import calculate_qparams, grid_range

OBSERVER_REGISTRY: dict[str, type[BaseObserver]] = {}


def register_observer(cls: type[BaseObserver]) -> type[BaseObserver]:
    OBSERVER_REGISTRY[cls.__name__] = cls
    return cls


def build_observer(
    config: QuantConfig, channel_axis: int = 0, name: str = "tensor"
) -> BaseObserver:
    """The observer ``config.observer_type`` names, for a tensor whose channels lie on
    ``channel_axis`` (0 for a weight [out, in], -1 for activations [..., features])."""
    try:
        cls = OBSERVER_REGISTRY[config.observer_type]
    except KeyError:
        raise ValueError(f"unknown observer_type {config.observer_type!r}; "
                         f"choose one of {', '.join(OBSERVER_TYPES)}") from None
    return cls(config, channel_axis=channel_axis, name=name)


def channel_extremes(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row (min, max) of [C, N] -> ([C], [C]). One row uses the global reduction, which is
    parallel (10x faster than ``aminmax(dim=1)`` on a single long row)."""
    if flat.shape[0] == 1:
        low, high = torch.aminmax(flat)
        return low.reshape(1), high.reshape(1)
    return torch.aminmax(flat, dim=1)


class BaseObserver:
    """Collects statistics of a tensor and turns them into qparams.

    Subclasses implement `_observe(flat, batch_min, batch_max)` and
    `_compute_range() -> (min [C], max [C])`, where ``flat`` is the tensor as [C, N] float32
    (C = 1 for layer_wise) and ``batch_min``/``batch_max`` [C] its extremes.
    """

    #: True when the chosen range depends on the bit width (a clip search); False when it
    #: depends on the data only, so a bit-width sweep computes the range once.
    range_depends_on_bits = False

    def __init__(self, config: QuantConfig, channel_axis: int = 0, name: str = "tensor") -> None:
        self.config = config
        self.channel_axis = channel_axis
        self.name = name
        self.reset()

    @property
    def bit_type(self) -> BitType:
        return self.config.bit_type

    def reset(self) -> None:
        """Forget everything observed."""
        self.num_channels: int | None = None
        self.num_observed = 0
        self.min_val: torch.Tensor | None = None
        self.max_val: torch.Tensor | None = None

    def update(self, tensor: torch.Tensor) -> None:
        """Observe one tensor (a weight, or one calibration batch). Empty tensors are skipped."""
        flat = self._flatten(tensor)
        if flat.numel() == 0:
            return
        # NaN and Inf propagate into the extremes: one pass checks finiteness too.
        batch_min, batch_max = channel_extremes(flat)
        if not bool(torch.isfinite(batch_min).all() & torch.isfinite(batch_max).all()):
            raise ValueError(f"{self.name}: the tensor contains NaN or Inf; "
                             "quantization needs finite values")
        self._observe(flat, batch_min, batch_max)  # may refuse the batch: count it after
        self.num_observed += flat.shape[1]

    def get_quantization_params(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale float32, zero_point int64), each [1] (layer_wise) or [C] (channel_wise)."""
        if self.num_observed == 0:
            raise RuntimeError(f"{self.name}: {type(self).__name__} has seen no data; "
                               "call update() (calibration) with a non-empty tensor first")
        min_val, max_val = self._compute_range()
        scale, zero = calculate_qparams(min_val, max_val, self.bit_type, self.config.is_symmetric)
        # Ranges near float32's limit (|x| ~ 3e38) overflow the scale or the grid's end codes.
        if not all(bool(torch.isfinite(end).all())
                   for end in grid_range(scale, zero, self.bit_type)):
            raise ValueError(
                f"{self.name}: the observed range [{float(min_val.min()):.4g}, "
                f"{float(max_val.max()):.4g}] is too wide to quantize in float32 (its "
                f"{self.bit_type.bits}-bit grid overflows); scale the tensor down")
        return scale, zero

    def with_bit_type(self, bit_type: BitType) -> BaseObserver:
        """A copy that shares the observed data but quantizes to ``bit_type``, so a bit-width
        sweep re-derives qparams without recalibrating."""
        clone = copy.copy(self)
        clone.config = dataclasses.replace(self.config, bit_type=bit_type)
        return clone

    def compute_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The (min, max) range the qparams come from, each [1] or [C], before zero is added."""
        if self.num_observed == 0:
            raise RuntimeError(f"{self.name}: no data observed yet")
        return self._compute_range()

    # --- for subclasses ------------------------------------------------------------------

    def _track_min_max(self, batch_min: torch.Tensor, batch_max: torch.Tensor) -> None:
        """Widen the running per-channel ``min_val``/``max_val`` [C] to cover a batch's."""
        if self.min_val is None:
            self.min_val, self.max_val = batch_min, batch_max
        else:
            self.min_val = torch.minimum(self.min_val, batch_min)
            self.max_val = torch.maximum(self.max_val, batch_max)

    def _observe(self, flat: torch.Tensor, batch_min: torch.Tensor,
                 batch_max: torch.Tensor) -> None:
        """Take in one batch [C, N] and its per-channel extremes [C]."""
        raise NotImplementedError

    def _compute_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _flatten(self, tensor: torch.Tensor) -> torch.Tensor:
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{self.name}: expected a torch.Tensor, got {type(tensor).__name__}")
        x = tensor.detach().float()
        if not self.config.is_channel_wise or x.dim() == 0:
            return x.reshape(1, -1)
        if x.numel() == 0:  # nothing to observe (reshape(0, -1) would be ambiguous)
            return x.reshape(1, 0)
        axis = self.channel_axis % x.dim()
        channels = x.shape[axis]
        if self.num_channels is None:
            self.num_channels = channels
        elif channels != self.num_channels:
            raise ValueError(f"{self.name}: channel_wise observer saw {self.num_channels} "
                             f"channels on axis {self.channel_axis}, now {channels}")
        return x.movedim(axis, 0).reshape(channels, -1)

