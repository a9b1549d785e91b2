"""Paired differences between two methods, with a bootstrap over conditions and over seeds.

Every cell of the study scores the same test conditions from the same initial noise for every
method of a seed, so method − reference is a difference per (seed, condition). Its spread has
two sources: which conditions were drawn (the same ones for every seed) and which training
subset, initialisation and noise a seed brought. A seed and a condition cross, they do not
nest, so the bootstrap resamples both at once (the "pigeonhole" bootstrap of Owen 2007): each
replicate draws seeds with replacement and, independently, conditions with replacement, and
averages the differences over the drawn grid; the interval is Student's t around the
difference with the replicates' sd (`_interval` says why not their percentiles). Resampling
conditions alone would miss the seed variance, which in this study is the larger one (a test
shows the miss).

`paired_difference` takes per-image scores (fidelity); `paired_distance_difference` takes
per-image features and a fixed reference set (FD, KID), recomputing the distance on every
replicate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

RESAMPLES = 1000


@dataclass(frozen=True)
class PairedDifference:
    """mean(method − reference) with its 95 % crossed-bootstrap interval; `seeds` and
    `conditions` are the sizes of the grid it averages over."""

    delta: float
    low: float
    high: float
    seeds: int
    conditions: int


def _crossed_draws(seeds: int, conditions: int, resamples: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(resamples):
        yield rng.integers(seeds, size=seeds), rng.integers(conditions, size=conditions)


def _interval(delta: float, replicates: list[float], degrees_of_freedom: float, seeds: int, conditions: int,
              confidence: float) -> PairedDifference:
    """delta ± t · (the replicates' sd). With five seeds a percentile interval covers a planted
    difference 86 % of the time at 95 %, since a bootstrap of five seeds cannot see the seed
    variance it has not sampled; Student's t at the degrees of freedom of the two variance
    components (Welch–Satterthwaite) covers it 95 % of the time (3 seeds: 78 % and 91 %; 10:
    92 % and 96 %; `benchmarks/paired_coverage.py`)."""
    half = stats.t.ppf((1 + confidence) / 2, degrees_of_freedom) * float(np.std(replicates))
    return PairedDifference(float(delta), float(delta - half), float(delta + half), seeds, conditions)


def _satterthwaite(differences: np.ndarray) -> float:
    """Degrees of freedom of the mean of a seeds × conditions grid of differences."""
    seeds, conditions = differences.shape
    if seeds == 1:
        return conditions - 1
    seed_variance = differences.mean(axis=1).var(ddof=1) / seeds
    condition_variance = differences.mean(axis=0).var(ddof=1) / conditions
    total = seed_variance + condition_variance
    if total == 0:
        return np.inf
    return total**2 / (seed_variance**2 / (seeds - 1) + condition_variance**2 / (conditions - 1))


def _check_grid(name: str, array: np.ndarray, dims: int) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != dims or array.shape[0] < 1 or array.shape[1] < 2:
        raise ValueError(f"{name} must be (seeds, conditions{', features' if dims == 3 else ''}) with at "
                         f"least one seed and two conditions, got shape {array.shape}")
    return array


def paired_difference(method: np.ndarray, reference: np.ndarray, resamples: int = RESAMPLES,
                      confidence: float = 0.95, seed: int = 0) -> PairedDifference:
    """Per-image scores `(seeds, conditions)` of two methods on the same grid."""
    method, reference = _check_grid("method", method, 2), _check_grid("reference", reference, 2)
    if method.shape != reference.shape:
        raise ValueError(f"paired scores need one grid: method {method.shape}, reference {reference.shape}")
    differences = method - reference
    replicates = [float(differences[np.ix_(s, c)].mean())
                  for s, c in _crossed_draws(*differences.shape, resamples, seed)]
    return _interval(differences.mean(), replicates, _satterthwaite(differences), *differences.shape, confidence)


def paired_distance_difference(distance: Callable[[np.ndarray, np.ndarray], float], real: np.ndarray,
                               method: np.ndarray, reference: np.ndarray, resamples: int = RESAMPLES,
                               confidence: float = 0.95, seed: int = 0) -> PairedDifference:
    """mean over seeds of distance(real, method's images) − distance(real, reference's images).

    `method` and `reference` are features `(seeds, conditions, d)` of the two methods' images,
    `real` the features of the fixed reference split. A replicate resamples the conditions of
    both methods alike (a resample repeats images, which inflates a distance; the difference
    sees the same repeats on both sides) and the seeds.
    """
    method, reference = _check_grid("method", method, 3), _check_grid("reference", reference, 3)
    if method.shape != reference.shape:
        raise ValueError(f"paired features need one grid: method {method.shape}, reference {reference.shape}")

    def gap(seeds: np.ndarray, conditions: np.ndarray) -> float:
        return float(np.mean([distance(real, method[s, conditions]) - distance(real, reference[s, conditions])
                              for s in seeds]))

    seeds, conditions = method.shape[:2]
    delta = gap(np.arange(seeds), np.arange(conditions))
    replicates = [gap(s, c) for s, c in _crossed_draws(seeds, conditions, resamples, seed)]
    # a distance has no per-condition terms to split the variance by: seeds' degrees of freedom,
    # which is conservative (the seed variance dominates here); one seed: the conditions'
    degrees_of_freedom = seeds - 1 if seeds > 1 else conditions - 1
    return _interval(delta, replicates, degrees_of_freedom, seeds, conditions, confidence)


def losses_against(scores: pd.DataFrame, reference: str, resamples: int = RESAMPLES, confidence: float = 0.95,
                   seed: int = 0) -> pd.DataFrame:
    """reference − setting for every column of a (conditions × settings) DataFrame of one seed's
    per-condition scores from the same noise: a DataFrame of `loss`, `loss_low`, `loss_high`."""
    full = scores[reference].to_numpy()[None]
    differences = {name: paired_difference(full, scores[name].to_numpy()[None], resamples, confidence, seed)
                   for name in scores.columns}
    return pd.DataFrame({"loss": [d.delta for d in differences.values()],
                         "loss_low": [d.low for d in differences.values()],
                         "loss_high": [d.high for d in differences.values()]}, index=list(differences))
