"""Session keys of the Single layer tab (no Streamlit)."""

from __future__ import annotations

from explorer.core.state import SECTION_TITLES, State, document_text

EDITOR_SECTION = "single.editor_section"  # segmented control: the config section shown
# (only its editor is drawn; the others are parsed)
EDITOR_DRAWN = "single.editor_drawn"  # plain: the section whose editor the last run drew
RESULT_VIEW = "single.result_view"  # segmented control: the result view shown (only it is drawn)
START_HIDDEN = "single.start_hidden"  # plain: the "start here" strip was dismissed
CHANNELS_SORTED = "single.channels_sorted"  # toggle: per-channel views worst channel first
ERROR_LOG = "single.error_log"      # toggle: error maps coloured by log10 |error|
PREVIOUS_METRICS = "single.previous_metrics"  # plain: (config key, {card: value}) shown before
CURRENT_METRICS = "single.current_metrics"    # plain: (config key, {card: value}) on screen
DOCUMENT = "single.document"  # plain: DocumentBox, the YAML the sidebar's download gives


def init_single_state(state: State) -> None:
    """Set the missing Single layer keys to their defaults."""
    state.setdefault(START_HIDDEN, False)
    state.setdefault(PREVIOUS_METRICS, None)
    state.setdefault(CURRENT_METRICS, None)
    state.setdefault(DOCUMENT, DocumentBox())


def editor_section_label(section: str) -> str:
    """How the section switcher names ``section`` (its value in `EDITOR_SECTION` is the
    section's own name)."""
    return f"{SECTION_TITLES[section]} config (`{section}:`)"


class DocumentBox:
    """The current YAML document for the sidebar's download button, which is drawn outside the
    editors' fragment: each run that draws the editors stores the text, and the button reads it
    when clicked (on a server thread), so a download never gives an edit's previous text."""

    def __init__(self) -> None:
        self.text = ""

    def read(self) -> str:
        return self.text


def refresh_document(state: State) -> None:
    state[DOCUMENT].text = document_text(state)
