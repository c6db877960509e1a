"""Shared fixtures for the explorer tests: the digits MLP, trained once per session."""

import pytest

from explorer.data.digits import load_or_train_digits_model


@pytest.fixture(scope="session")
def digits_cache_dir(tmp_path_factory):
    """A private cache folder, so tests never read or write ~/.cache."""
    return tmp_path_factory.mktemp("digits-cache")


@pytest.fixture(scope="session")
def digits(digits_cache_dir):
    """The seed-0 digits MLP, trained (a few seconds) into ``digits_cache_dir``."""
    return load_or_train_digits_model(seed=0, cache_dir=digits_cache_dir)
