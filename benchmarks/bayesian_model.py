"""Does the Bayesian layer carry information, and what does it cost in fidelity? Two saved runs.

    python benchmarks/bayesian_model.py runs/shapes-sketch-bayes-n40-seed0 runs/shapes-sketch-deterministic-n40-seed0

Prints, as markdown:
- the posterior against the prior, per coefficient group: posterior sd / prior sd (median, range),
  the largest shift of a posterior mean in prior sd, and KL(q ‖ p) in nats;
- the paired differences in held-out fidelity, Bayesian minus deterministic, for the
  posterior-mean and the posterior-predictive samples: the two runs share their seed, hence
  their held-out conditions and their initial noise, so the difference is taken image by image
  and bootstrapped over conditions (`experiments.paired`, one seed: 95 % interval);
- what λ the Bayesian run used.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bayes_bps.experiments.analysis import posterior_shift
from bayes_bps.experiments.paired import paired_difference
from bayes_bps.training import load_run

RESAMPLES = 10000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bayesian", type=Path)
    parser.add_argument("deterministic", type=Path)
    args = parser.parse_args()
    run = load_run(args.bayesian, device="cpu")
    shift = posterior_shift(run)
    print(f"## Posterior against prior ({args.bayesian}, λ = {float(run.objective.model.temperature):.3g})\n")
    print("| coefficient | sd ratio, median | range | largest shift, absolute (prior sd) | KL of the marginals; "
          "all: joint (nats) |")
    print("|---|---|---|---|---|")
    for name, table in shift.groupby(level=0, sort=False):
        print(f"| {name} | {table.sd_ratio.median():.3f} | {table.sd_ratio.min():.3f}–{table.sd_ratio.max():.3f} | "
              f"{table.shift_sd.abs().max():.2f} | {table.kl_nats.sum():.2f} |")
    print(f"| all | **{shift.sd_ratio.median():.3f}** | | {shift.shift_sd.abs().max():.2f} | "
          f"**{run.objective.guide.total_kl():.2f}** |\n")

    bayesian, deterministic = (json.loads((folder / "evaluation.json").read_text())
                               for folder in (args.bayesian, args.deterministic))
    metric = next(name for name in deterministic["steered"] if "per_image" in deterministic["steered"][name])
    print(f"## Paired {metric}, Bayesian − deterministic, {len(deterministic['steered'][metric]['per_image'])} "
          "held-out conditions, same noise\n")
    print("| samples | Bayesian | deterministic | Δ [95 % CI] |\n|---|---|---|---|")
    reference = deterministic["steered"][metric]
    for kind, label in (("steered", "posterior-mean coefficients"), ("posterior_predictive", "posterior predictive")):
        scores = bayesian[kind][metric]
        result = paired_difference(np.array([scores["per_image"]]), np.array([reference["per_image"]]),
                                   resamples=RESAMPLES)
        print(f"| {label} | {scores['value']:.3f} | {reference['value']:.3f} | "
              f"{result.delta:+.3f} [{result.low:+.3f}, {result.high:+.3f}] |")


if __name__ == "__main__":
    main()
