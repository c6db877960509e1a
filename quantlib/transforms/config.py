"""``TransformConfig``: the ``transform:`` section of a layer config, validated on construction.

```yaml
transform:
  smoothquant: {alpha: 0.5}     # null or absent: off
  rotation: hadamard            # none (default) | hadamard
  seed: 0                       # the rotation's random signs
  weight_algorithm: gptq        # rtn (default) | awq | gptq
  gptq: {damp: 0.01, block: 128, act_order: false}
  awq: {grid: 20}
```

Every number is bounded, so every config that validates runs in bounded time for a given
layer. Errors are ``ConfigError``s whose path is the dotted field (``transform.gptq.damp``)
and whose message lists the valid choices or range.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from quantlib.errors import ConfigError, show_value

SECTION = "transform"
ROTATIONS = ("none", "hadamard")
WEIGHT_ALGORITHMS = ("rtn", "awq", "gptq")
MAX_SEED = 2**31 - 1
MIN_BLOCK, MAX_BLOCK = 1, 4096
MIN_GRID, MAX_GRID = 2, 100
MAX_DAMP = 1.0


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_int(path: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"must be an integer from {low} to {high}, got {show_value(value)}",
                          path)


def _check_bool(path: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"must be true or false, got {show_value(value)}", path)


def _check_choice(path: str, value: object, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{show_value(value)} is not valid; choose one of "
                          f"{', '.join(choices)}", path)


@dataclass
class SmoothQuantConfig:
    """``alpha`` in [0, 1]: the migration strength (0 keeps the activations, 1 moves all of
    their range into the weight)."""

    alpha: float = 0.5

    def __post_init__(self) -> None:
        if not _number(self.alpha) or not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"must be a number in [0, 1], e.g. 0.5; got "
                              f"{show_value(self.alpha)}", f"{SECTION}.smoothquant.alpha")
        self.alpha = float(self.alpha)


@dataclass
class GPTQConfig:
    """``damp`` in (0, 1]: fraction of mean(diag H) added to H's diagonal; ``block`` (1..4096):
    lazy-update width, speed only; ``act_order``: quantize columns by descending H_jj."""

    damp: float = 0.01
    block: int = 128
    act_order: bool = False

    def __post_init__(self) -> None:
        if not _number(self.damp) or not 0.0 < self.damp <= MAX_DAMP:
            raise ConfigError(f"must be a number in (0, {MAX_DAMP:g}], e.g. 0.01; got "
                              f"{show_value(self.damp)}", f"{SECTION}.gptq.damp")
        self.damp = float(self.damp)
        _check_int(f"{SECTION}.gptq.block", self.block, MIN_BLOCK, MAX_BLOCK)
        _check_bool(f"{SECTION}.gptq.act_order", self.act_order)


@dataclass
class AWQConfig:
    """``grid`` (2..100): alphas tried, i / grid for i = 0 .. grid - 1."""

    grid: int = 20

    def __post_init__(self) -> None:
        _check_int(f"{SECTION}.awq.grid", self.grid, MIN_GRID, MAX_GRID)


@dataclass
class TransformConfig:
    """What to do to one linear layer before quantizing it (see the module docstring).

    Order of application: SmoothQuant, then rotation, then the weight algorithm (RTN, AWQ or
    GPTQ) on the transformed weight with the transformed calibration inputs.
    """

    smoothquant: SmoothQuantConfig | None = None
    rotation: str = "none"
    seed: int = 0
    weight_algorithm: str = "rtn"
    gptq: GPTQConfig = field(default_factory=GPTQConfig)
    awq: AWQConfig = field(default_factory=AWQConfig)

    def __post_init__(self) -> None:
        if self.smoothquant is not None and not isinstance(self.smoothquant,
                                                           SmoothQuantConfig):
            raise ConfigError(f"must be a SmoothQuantConfig or None, got "
                              f"{show_value(self.smoothquant)}", f"{SECTION}.smoothquant")
        _check_choice(f"{SECTION}.rotation", self.rotation, ROTATIONS)
        _check_int(f"{SECTION}.seed", self.seed, 0, MAX_SEED)
        _check_choice(f"{SECTION}.weight_algorithm", self.weight_algorithm, WEIGHT_ALGORITHMS)
        for name, kind in (("gptq", GPTQConfig), ("awq", AWQConfig)):
            if not isinstance(getattr(self, name), kind):
                raise ConfigError(f"must be a {kind.__name__}, got "
                                  f"{show_value(getattr(self, name))}", f"{SECTION}.{name}")

    @property
    def is_identity(self) -> bool:
        """True when nothing changes the layer beyond plain RTN."""
        return (self.smoothquant is None and self.rotation == "none"
                and self.weight_algorithm == "rtn")

    @classmethod
    def from_dict(cls, mapping: Mapping | None) -> TransformConfig:
        """Build from the ``transform:`` section's parsed YAML (None or {} -> the defaults).
        Unknown keys raise ConfigError naming the closest valid key."""
        if mapping is None:
            return cls()
        body = _mapping(mapping, SECTION, "a mapping such as {rotation: hadamard}")
        _check_keys(body, SECTION, tuple(f.name for f in fields(cls)))
        kwargs = dict(body)
        if kwargs.get("smoothquant") is not None:
            kwargs["smoothquant"] = _sub(SmoothQuantConfig, kwargs["smoothquant"], "smoothquant",
                                         "a mapping such as {alpha: 0.5}, or null for off")
        for name, kind, example in (("gptq", GPTQConfig, "{damp: 0.01, block: 128}"),
                                    ("awq", AWQConfig, "{grid: 20}")):
            if name in kwargs:
                kwargs[name] = _sub(kind, kwargs[name], name, f"a mapping such as {example}")
        return cls(**kwargs)

    def to_dict(self) -> dict:
        """A plain YAML-ready dict; ``from_dict(to_dict())`` gives an equal config."""
        return {
            "smoothquant": None if self.smoothquant is None else {
                "alpha": self.smoothquant.alpha},
            "rotation": self.rotation,
            "seed": self.seed,
            "weight_algorithm": self.weight_algorithm,
            "gptq": {"damp": self.gptq.damp, "block": self.gptq.block,
                     "act_order": self.gptq.act_order},
            "awq": {"grid": self.awq.grid},
        }


def transform_from_section(body: object, lines: Mapping[str, int]) -> TransformConfig:
    """The parsed ``transform:`` section -> TransformConfig (None -> the defaults). ``lines``
    maps dotted paths to 1-based lines (the config loader's); a ConfigError gets the line of
    its field, or of the closest enclosing key that has one."""
    try:
        return TransformConfig.from_dict(body)
    except ConfigError as err:
        path = probe = err.path or SECTION
        while probe not in lines and "." in probe:
            probe = probe.rsplit(".", 1)[0]
        raise ConfigError(err.reason, path, lines.get(probe)) from None


def _mapping(value: object, path: str, expected: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise ConfigError(f"must be {expected}, got {show_value(value)}", path)
    return value


def _check_keys(body: Mapping, path: str, valid: tuple[str, ...]) -> None:
    for key in body:
        if key not in valid:
            close = difflib.get_close_matches(str(key), valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown key {show_value(key)}{hint}; valid keys: "
                              f"{', '.join(valid)}", f"{path}.{key}")


def _sub(kind: type, value: object, name: str, expected: str):
    path = f"{SECTION}.{name}"
    body = _mapping(value, path, expected)
    _check_keys(body, path, tuple(f.name for f in fields(kind)))
    return kind(**body)
