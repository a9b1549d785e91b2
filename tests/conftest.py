"""Fixtures shared by the end-to-end tests."""

import os

import pytest
import torch
from filelock import FileLock

from bayes_bps.viz.figure_runs import figure_inputs, study_rows
from bayes_bps.viz.figure_runs import tiny_base as pretrain_tiny_base

if os.environ.get("PYTEST_XDIST_WORKER"):  # the workers share the cores: one thread each, not one per core
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"  # and so do the kernels and scripts they start


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
    ($BAYES_BPS_FAST_WORK), fitted here once for every xdist worker: the first worker to ask fits
    them under a lock and the others wait and reuse them, so no notebook cell spends its timeout
    fitting while another worker fits the same runs."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the folder above each worker's own: shared by the whole run
    work = root / "fast-runs"
    with FileLock(f"{work}.lock"):
        figure_inputs(fast=True, work=work)
        study_rows(fast=True, work=work)
    return work


@pytest.fixture(scope="session")
def twin_runs(tiny_base, tmp_path_factory):
    """A Bayesian and a deterministic 2-step fit on the same tiny pairs and seed: what the
    experiments on fitted runs (failure detection, time gates, pruning) take."""
    from bayes_bps.fit import main as fit_main
    from bayes_bps.training import load_run
    from tests.test_fit import run_args

    folder = tmp_path_factory.mktemp("twin-runs")
    for name, extra in (("bayes", ()), ("det", ("--deterministic",))):
        fit_main(run_args(tiny_base, folder / name, "--steps", "2", "--eval-samples", "1", "--grid-conditions", "1",
                          *extra))
    return load_run(folder / "bayes"), load_run(folder / "det")
