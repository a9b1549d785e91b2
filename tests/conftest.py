"""Fixtures shared by the end-to-end tests."""

import os

import pytest
import torch

from bayes_bps.viz.figure_runs import tiny_base as pretrain_tiny_base

if os.environ.get("PYTEST_XDIST_WORKER"):  # the workers share the cores: one thread each, not one per core
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory):
    """A digits base pretrained for two steps at 16x16: every output exists, nothing is good."""
    return pretrain_tiny_base(tmp_path_factory.mktemp("bases"))


@pytest.fixture(autouse=True)
def sample_cache(tmp_path_factory, monkeypatch):
    """The unsteered-sample cache of fits goes to a temporary folder, never the user's home."""
    monkeypatch.setenv("BAYES_BPS_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def fast_work(tmp_path_factory):
    """One folder of fast-mode tiny runs for the notebooks and the figure scripts
    ($BAYES_BPS_FAST_WORK): each fits what is missing, the later ones reuse it."""
    return tmp_path_factory.mktemp("fast-runs")
