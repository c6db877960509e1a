""".streamlit/config.toml: the server settings SECURITY.md relies on stay set.

Streamlit ignores a misspelt option with only a log line, so each setting is checked twice:
in the file as written (parsed with `tomllib`, there from Python 3.11 on, which the pinned
Streamlit requires) and as Streamlit itself reads it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import tomllib
from streamlit import config as st_config

from explorer.data import panel as data_panel
from explorer.data import uploads
from quantlib.config_loader import MAX_CONFIG_BYTES

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / ".streamlit" / "config.toml"


@pytest.fixture(scope="module")
def settings() -> dict[str, object]:
    """The file's settings as ``{"section.option": value}``."""
    with CONFIG.open("rb") as file:
        document = tomllib.load(file)
    return {f"{section}.{name}": value for section, options in document.items()
            for name, value in options.items()}


def test_every_setting_is_a_streamlit_option(settings):
    known = set(st_config.get_config_options())
    assert set(settings) <= known, sorted(set(settings) - known)


def test_error_details_never_reach_the_page(settings):
    # "none": a generic message only; the type, message and traceback go to the server log.
    assert settings["client.showErrorDetails"] == "none"


def test_upload_size_is_capped_at_what_the_tensor_parser_accepts(settings):
    cap = settings["server.maxUploadSize"]
    assert isinstance(cap, int) and not isinstance(cap, bool)
    assert cap == data_panel.MAX_UPLOAD_MB  # the tensor uploaders' own limit
    assert cap * 2**20 == uploads.MAX_UPLOAD_BYTES  # Streamlit counts MiB
    assert MAX_CONFIG_BYTES < 2**20  # the YAML uploader's 1 MB widget limit is above the
    # 16 KiB config cap, so an oversize config reaches load_upload and gets its message


def test_xsrf_and_cors_protection_stay_on(settings):
    # Absent means Streamlit's default (on); only an explicit false weakens them.
    assert settings.get("server.enableXsrfProtection", True) is True
    assert settings.get("server.enableCORS", True) is True
    assert "server.corsAllowedOrigins" not in settings  # no extra origins trusted


def test_no_file_watcher_runs_in_the_served_app(settings):
    # With a watcher, Streamlit rescanned every loaded module's path (torch, plotly: over
    # 2,000) after a run that imported something new, on the event loop that sends the page.
    # Measured A/B in Chromium: first plot 2.83 vs 3.48 s without it.
    assert settings["server.fileWatcherType"] == "none"
    assert settings["server.runOnSave"] is False


def test_streamlit_reads_the_same_values_from_the_file(settings):
    """Streamlit parses the file from the working directory; read it as `streamlit run`
    from the repository root would, then restore the caller's configuration."""
    before = os.getcwd()
    os.chdir(REPO)
    try:
        options = st_config.get_config_options(force_reparse=True)
        for key in ("client.showErrorDetails", "server.maxUploadSize",
                    "server.enableXsrfProtection", "server.enableCORS",
                    "server.fileWatcherType"):
            assert options[key].value == settings[key], key
            assert Path(options[key].where_defined).resolve() == CONFIG, key
    finally:
        os.chdir(before)
        st_config.get_config_options(force_reparse=True)
