"""Session keys of the share/export section (no Streamlit)."""

from __future__ import annotations

from explorer.core.state import State

SHARE_LOADED = "share.loaded"        # plain: the link in the URL was read (once per session)
SHARE_NOTICE = "share.notice"        # plain: (level, message) about the link that was read


def init_share_state(state: State) -> None:
    """Set the missing sharing keys to their defaults."""
    state.setdefault(SHARE_LOADED, False)
    state.setdefault(SHARE_NOTICE, None)
