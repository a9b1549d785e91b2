"""Failure detection: the AUROC statistics on planted truths, and the detectors on tiny runs."""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import norm

from bayes_bps.experiments.failure_detection import DETECTORS, SCORES, detection_table, spread, summarize
from bayes_bps.experiments.held_out import held_out


def _planted(n: int, separation: float, informative: bool, seed: int = 0) -> pd.DataFrame:
    """Failures at 20 %; the posterior's scores are Normal(separation · failed, 1) when
    `informative`, every other score is Normal(0, 1) whatever the outcome."""
    generator = np.random.default_rng(seed)
    failed = generator.random(n) < 0.2
    table = {"failed": failed}
    for name in DETECTORS:
        for score in SCORES:
            shift = separation * failed if (name == "posterior" and informative) else 0.0
            table[f"{name}_{score}"] = shift + generator.standard_normal(n)
    return pd.DataFrame(table)


def test_auroc_recovers_the_binormal_closed_form_and_the_paired_interval_sees_the_gain():
    # two unit normals d apart: AUROC = Φ(d / √2)
    summary = summarize(_planted(4000, separation=1.0, informative=True), resamples=300)
    assert summary.auroc["posterior_spread"] == pytest.approx(norm.cdf(1 / np.sqrt(2)), abs=0.025)
    for null in ("deterministic", "prior"):
        assert summary.auroc[f"{null}_spread"] == pytest.approx(0.5, abs=0.04)
        value, low, high = summary.differences[f"spread_vs_{null}"]
        assert low < value < high and low > 0.15


def test_an_uninformative_posterior_gets_an_interval_around_zero():
    summary = summarize(_planted(400, separation=1.0, informative=False), resamples=300)
    for key in ("spread_vs_deterministic", "spread_vs_prior", "self_check_vs_prior"):
        _, low, high = summary.differences[key]
        assert low < 0 < high, key


def test_no_failures_leave_the_auroc_undefined():
    table = _planted(50, 1.0, True)
    table["failed"] = False
    summary = summarize(table, resamples=10)
    assert summary.n_failures == 0 and np.isnan(summary.auroc["posterior_spread"])


def test_spread_is_the_pixel_sd_across_images():
    images = torch.zeros(3, 2, 1, 4, 4)
    images[:, 1] = torch.tensor([-1.0, 0.0, 1.0])[:, None, None, None]
    assert torch.allclose(spread(images), torch.tensor([0.0, 1.0]))


def test_detection_table_on_tiny_runs(twin_runs):
    bayesian, deterministic = twin_runs
    conditions = held_out("digits", "sketch", "test", 5, bayesian.base.resolution)
    table = detection_table(bayesian, deterministic, conditions, num_draws=3, steps=2, chunk=2, progress=False)
    assert list(table["condition"]) == list(range(5)) and table["caption"].tolist() == conditions.captions
    assert (table["failed"] == (table["fidelity"] < 0.5)).all()
    for name in DETECTORS:  # K different noises: every detector's images differ
        assert (table[f"{name}_spread"] > 0).all(), name
        assert table[f"{name}_self_check"].between(0, 1).all(), name
    again = detection_table(bayesian, deterministic, conditions, num_draws=3, steps=2, chunk=5, progress=False)
    pd.testing.assert_frame_equal(table, again, atol=1e-4)  # the chunking changes nothing


def test_detection_needs_a_bayesian_and_a_deterministic_run_of_the_same_pairs(twin_runs):
    bayesian, deterministic = twin_runs
    conditions = held_out("digits", "sketch", "test", 2, bayesian.base.resolution)
    with pytest.raises(ValueError, match="a Bayesian run and a deterministic one"):
        detection_table(deterministic, bayesian, conditions, progress=False)
    with pytest.raises(ValueError, match="at least 2 images"):
        detection_table(bayesian, deterministic, conditions, num_draws=1, progress=False)
