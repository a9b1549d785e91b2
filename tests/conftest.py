"""Fixtures shared by the end-to-end tests."""

import pytest

from bayes_bps.viz.figure_runs import tiny_base as pretrain_tiny_base


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory):
    """A digits base pretrained for two steps at 16x16: every output exists, nothing is good."""
    return pretrain_tiny_base(tmp_path_factory.mktemp("bases"))
