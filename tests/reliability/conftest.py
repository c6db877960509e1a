"""Fixtures for the reliability tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def write_config(tmp_path):
    """Write bytes to a fresh file under tmp_path and return its path."""

    def write(name: str, data: bytes):
        path = tmp_path / f"{name}.yaml"
        path.write_bytes(data)
        return path

    return write
