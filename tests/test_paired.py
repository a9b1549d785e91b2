"""Paired differences: the crossed bootstrap covers a planted mean, and resampling conditions
alone (the control) does not when seeds vary."""

import numpy as np
import pytest

from bayes_bps.experiments.paired import paired_difference, paired_distance_difference
from bayes_bps.metrics import kernel_inception_distance

TRUTH = 0.05


def _planted(rng, seeds=5, conditions=64):
    """Scores of a reference and of a method better by TRUTH on average, with seed effects
    (a training subset that helps or hurts every condition) larger than condition effects."""
    reference = 0.6 + rng.normal(0, 0.1, size=(1, conditions)) + rng.normal(0, 0.05, size=(seeds, conditions))
    seed_effect = rng.normal(0, 0.04, size=(seeds, 1))
    condition_effect = rng.normal(0, 0.02, size=(1, conditions))
    method = reference + TRUTH + seed_effect + condition_effect + rng.normal(0, 0.05, size=(seeds, conditions))
    return method, reference


def test_the_crossed_bootstrap_covers_the_planted_difference_and_a_condition_only_one_does_not():
    rng = np.random.default_rng(0)
    crossed, flattened = [], []
    for replicate in range(120):
        method, reference = _planted(rng)
        result = paired_difference(method, reference, resamples=300, seed=replicate)
        crossed.append(result.low <= TRUTH <= result.high)
        # the control: every (seed, condition) treated as an independent condition
        flat = paired_difference(method.reshape(1, -1), reference.reshape(1, -1), resamples=300, seed=replicate)
        flattened.append(flat.low <= TRUTH <= flat.high)
        assert result.delta == pytest.approx(flat.delta)
    assert np.mean(crossed) >= 0.9, np.mean(crossed)
    assert np.mean(flattened) <= 0.6, np.mean(flattened)


def test_paired_difference_reports_its_grid_and_rejects_mismatched_ones():
    rng = np.random.default_rng(1)
    method, reference = _planted(rng, seeds=3, conditions=10)
    result = paired_difference(method, reference, resamples=50)
    assert (result.seeds, result.conditions) == (3, 10) and result.low < result.delta < result.high
    with pytest.raises(ValueError, match="one grid"):
        paired_difference(method, reference[:, :5])
    with pytest.raises(ValueError, match="seeds, conditions"):
        paired_difference(method[0], reference[0])


def test_paired_kid_difference_is_zero_for_one_method_and_positive_for_a_shifted_one():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(80, 8))
    reference = rng.normal(size=(3, 40, 8))
    same = paired_distance_difference(kernel_inception_distance, real, reference, reference, resamples=50)
    assert same.delta == same.low == same.high == 0
    shifted = paired_distance_difference(kernel_inception_distance, real, reference + 0.7, reference, resamples=100)
    assert shifted.low > 0 and shifted.seeds == 3 and shifted.conditions == 40
