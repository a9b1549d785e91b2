"""Coverage of the study's paired intervals on a planted difference, against the alternatives.

    python benchmarks/paired_coverage.py --replicates 300

Differences per (seed, condition) are planted as Δ + seed effect + condition effect + noise
(`tests/test_paired.py`'s setting: seed effects of sd 0.04, condition effects 0.02, noise 0.05,
64 conditions). For 3, 5 and 10 seeds it prints how often each 95 % interval covers Δ:

- `experiments.paired.paired_difference`: crossed bootstrap sd, Student t at Satterthwaite's df;
- the crossed bootstrap's percentile interval;
- a bootstrap over conditions alone, seeds pooled (the two-sample habit this replaces).
"""

from __future__ import annotations

import argparse

import numpy as np

from bayes_bps.experiments.paired import paired_difference

TRUTH, CONDITIONS = 0.05, 64


def planted(rng: np.random.Generator, seeds: int) -> np.ndarray:
    return (TRUTH + rng.normal(0, 0.04, (seeds, 1)) + rng.normal(0, 0.02, (1, CONDITIONS))
            + rng.normal(0, 0.05, (seeds, CONDITIONS)))


def percentile_covers(differences: np.ndarray, rng: np.random.Generator, resamples: int) -> bool:
    seeds, conditions = differences.shape
    means = [differences[np.ix_(rng.integers(seeds, size=seeds), rng.integers(conditions, size=conditions))].mean()
             for _ in range(resamples)]
    low, high = np.quantile(means, [0.025, 0.975])
    return low <= TRUTH <= high


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=300)
    parser.add_argument("--resamples", type=int, default=400)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print("| seeds | crossed, t (the package) | crossed, percentile | conditions only |\n|---|---|---|---|")
    for seeds in (3, 5, 10):
        hits = np.zeros(3)
        for replicate in range(args.replicates):
            differences = planted(rng, seeds)
            result = paired_difference(differences, np.zeros_like(differences), resamples=args.resamples,
                                       seed=replicate)
            pooled = paired_difference(differences.reshape(1, -1), np.zeros((1, differences.size)),
                                       resamples=args.resamples, seed=replicate)
            hits += [result.low <= TRUTH <= result.high,
                     percentile_covers(differences, np.random.default_rng(replicate), args.resamples),
                     pooled.low <= TRUTH <= pooled.high]
        print(f"| {seeds} | " + " | ".join(f"{hit / args.replicates:.2f}" for hit in hits) + " |")


if __name__ == "__main__":
    main()
