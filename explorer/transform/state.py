"""The transform panel's session keys and callbacks (no Streamlit; state is a mapping).

The ``transform:`` section's body text lives in core's shared key
``store_key(TRANSFORM)`` and its on/off switch in ``TRANSFORM_ENABLED`` (both in
`explorer.core.state`, so the document download, presets and share links carry them). This
module owns the editor's widgets: the YAML text area (`TEXT`) and the field widgets, which
mirror the text both ways, as the weight/output editors do.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

import yaml

from explorer.core import state as S
from quantlib.config_loader import ConfigError, parse_transform
from quantlib.transforms import GPTQConfig, SmoothQuantConfig, TransformConfig

State = MutableMapping[str, object]

TEXT = "transform.yaml"
SQ_ON = "transform.smoothquant_on"
ALPHA = "transform.alpha"
ROTATION = "transform.rotation"
ALGORITHM = "transform.weight_algorithm"
DAMP = "transform.gptq_damp"
BLOCK = "transform.gptq_block"
ACT_ORDER = "transform.gptq_act_order"
RUN_GPTQ = "transform.run_gptq"
CANCEL = "transform.cancel"
OPEN = "transform.open"  # the panel's expander (lazy: computes only while open)
WIDGETS = (SQ_ON, ALPHA, ROTATION, ALGORITHM, DAMP, BLOCK, ACT_ORDER)


def init_transform_state(state: State) -> None:
    """Seed the editor's widgets from the stored text (every missing key)."""
    state.setdefault(S.store_key(S.TRANSFORM), S.DEFAULT_TRANSFORM_YAML)
    state.setdefault(S.TRANSFORM_ENABLED, False)
    ensure_widgets(state)


def ensure_widgets(state: State) -> None:
    """Re-seed widget keys Streamlit dropped, from the stored text."""
    text = state[S.store_key(S.TRANSFORM)]
    state.setdefault(TEXT, text)
    if any(key not in state for key in WIDGETS):
        config = parse(text)[0] or TransformConfig()
        for key, value in widget_values(config).items():
            state.setdefault(key, value)


def parse(text: str) -> tuple[TransformConfig | None, ConfigError | None]:
    """The section body -> ``(config, None)`` or ``(None, error)``."""
    try:
        return parse_transform(text), None
    except ConfigError as err:
        return None, err


def current(state: State) -> tuple[TransformConfig | None, ConfigError | None]:
    """The stored text's config (whether or not it is enabled)."""
    return parse(state[S.store_key(S.TRANSFORM)])


def with_document_transform(state: State, configs: Mapping | None) -> Mapping | None:
    """``configs`` plus ``"transform"``: the section's config when it is enabled and valid,
    else None (an invalid text is reported by the panel and leaves the layer untransformed)."""
    if configs is None:
        return None
    config = current(state)[0] if state.get(S.TRANSFORM_ENABLED) else None
    return {**configs, "transform": config}


def widget_values(config: TransformConfig) -> dict[str, object]:
    """The widget values that show ``config``."""
    return {SQ_ON: config.smoothquant is not None,
            ALPHA: 0.5 if config.smoothquant is None else config.smoothquant.alpha,
            ROTATION: config.rotation, ALGORITHM: config.weight_algorithm,
            DAMP: config.gptq.damp, BLOCK: config.gptq.block, ACT_ORDER: config.gptq.act_order}


def text_of(config: TransformConfig) -> str:
    """A compact body for ``config`` (flow mappings, only what differs from the defaults
    besides the three main keys)."""
    lines = ["smoothquant: null" if config.smoothquant is None
             else f"smoothquant: {{alpha: {config.smoothquant.alpha:g}}}",
             f"rotation: {config.rotation}"]
    if config.seed:
        lines.append(f"seed: {config.seed}")
    lines.append(f"weight_algorithm: {config.weight_algorithm}")
    if config.weight_algorithm == "gptq" or config.gptq != GPTQConfig():
        gptq = config.gptq
        lines.append(f"gptq: {{damp: {gptq.damp:g}, block: {gptq.block}, act_order: "
                     f"{'true' if gptq.act_order else 'false'}}}")
    if config.awq.grid != 20:
        lines.append(yaml.safe_dump({"awq": {"grid": config.awq.grid}},
                                    default_flow_style=True).strip()[1:-1])
    return "\n".join(lines) + "\n"


def on_text_change(state: State) -> None:
    """The YAML text area changed: store it; when valid, move the widgets to match."""
    text = state[TEXT]
    state[S.store_key(S.TRANSFORM)] = text
    config = parse(text)[0]
    if config is not None:
        state.update(widget_values(config))


def on_widget_change(state: State) -> None:
    """A field widget changed: rewrite the text from the widgets (keeping seed and awq)."""
    base = current(state)[0] or TransformConfig()
    config = TransformConfig(
        smoothquant=SmoothQuantConfig(round(float(state[ALPHA]), 4)) if state[SQ_ON] else None,
        rotation=state[ROTATION], seed=base.seed, weight_algorithm=state[ALGORITHM],
        gptq=GPTQConfig(float(state[DAMP]), int(state[BLOCK]), bool(state[ACT_ORDER])),
        awq=base.awq)
    text = text_of(config)
    state[S.store_key(S.TRANSFORM)] = text
    state[TEXT] = text


def sync_from_store(state: State) -> None:
    """After a preset, upload or link replaced the stored text: show it in the widgets."""
    text = state[S.store_key(S.TRANSFORM)]
    if state.get(TEXT) != text:
        state[TEXT] = text
        config = parse(text)[0]
        if config is not None:
            state.update(widget_values(config))
