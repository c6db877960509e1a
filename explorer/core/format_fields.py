"""What the Format and Granularity widgets imply for a section's YAML text (pure, no Streamlit).

A float format derives ``bits``/``signed`` and (MX, NVFP4) needs ``block_wise`` with its block
size; ``block_wise`` needs a ``block_size``. `format_edits` rewrites those lines with
`explorer.core.yaml_edit`, keeping every other line and comment.
"""

from __future__ import annotations

from explorer.core.yaml_edit import delete_field, format_scalar, get_field, set_field
from quantlib.formats.specs import FORMATS
from quantlib.quant_config import BLOCK_OBSERVERS, FP8_OBSERVERS

# The Format widget: "int" (bits and signed set the integer) or a float format by name.
INT_FORMAT = "int"
FORMAT_CHOICES = (INT_FORMAT, *(name for name, spec in FORMATS.items() if spec.family != "int"))
DEFAULT_BLOCK_SIZE = 32  # block_wise integers: divides every layer shape the sidebar offers


def default_block_size(name: str) -> int:
    """The block size a format needs (MX 32, NVFP4 16), else `DEFAULT_BLOCK_SIZE`."""
    spec = FORMATS.get(name)
    return (spec.block_size if spec is not None and spec.block_size else DEFAULT_BLOCK_SIZE)


def format_edits(text: str, field: str, value: str, bits: int,
                 signed: bool) -> tuple[str | None, str | None]:
    """``(new text or None, message or None)`` for a Format or Granularity change.

    - A float format writes ``bit_type: {name: ...}`` and drops ``bits``/``signed`` (derived);
      MX and NVFP4 also set ``block_wise`` with their block size; float formats take Uniform,
      and an observer the format cannot use becomes MinmaxObserver.
    - ``int`` names the integer by ``bits`` and ``signed`` (the widgets) (``int4``) and writes them.
    - Granularity ``block_wise`` adds ``block_size`` when absent; leaving it removes it.
    """
    changes: list[str] = []

    def put(path: tuple[str, ...], new_value) -> None:
        nonlocal text
        if text is not None and get_field(text, path) != format_scalar(new_value):
            edited = set_field(text, path, new_value)
            if edited is not None and path[-1] != field and path[-1] != "name":
                changes.append(f"{path[-1]}: {format_scalar(new_value)}")
            text = edited

    def drop(path: tuple[str, ...], why: str) -> None:
        nonlocal text
        if text is not None and get_field(text, path) is not None:
            text = delete_field(text, path)
            changes.append(f"{path[-1]} removed ({why})")

    mode = value if field == "calibration_mode" else get_field(text, ("calibration_mode",))
    name = value if field == "format" else (get_field(text, ("bit_type", "name")) or "")
    spec = FORMATS.get(name)
    is_float = spec is not None and spec.family != "int"
    if field == "format" and not is_float:
        put(("bit_type", "name"), f"{'int' if signed else 'uint'}{bits}")
        put(("bit_type", "bits"), bits)
        put(("bit_type", "signed"), signed)
    elif field == "format":
        put(("bit_type", "name"), name)
        drop(("bit_type", "bits"), "derived from the format")
        drop(("bit_type", "signed"), "derived from the format")
        if spec.block_size is not None:
            mode = "block_wise"
            put(("calibration_mode",), mode)
        if get_field(text or "", ("quantization_method",)) == "Affine":
            put(("quantization_method",), "Uniform")
    else:
        put(("calibration_mode",), mode)
    if mode == "block_wise":
        wanted = default_block_size(name) if is_float and spec.block_size else None
        current = get_field(text or "", ("block_size",))
        if wanted is not None or current is None:
            put(("block_size",), wanted or default_block_size(name))
    else:
        drop(("block_size",), "it applies to block_wise only")
    observer = get_field(text or "", ("observer_type",))
    allowed = BLOCK_OBSERVERS if mode == "block_wise" else (FP8_OBSERVERS if is_float
                                                            else None)
    if allowed is not None and observer is not None and observer not in allowed:
        put(("observer_type",), "MinmaxObserver")
    if text is None:
        return None, None
    message = None
    if changes:
        message = (f"{'Format' if field == 'format' else 'Granularity'} {value} also "
                   "changed: " + ", ".join(changes) + ".")
    return text, message
