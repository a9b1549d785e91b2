"""Do Bayesian port heads leave their prior? Fits at N = 10 at several likelihood temperatures.

    python benchmarks/heads_concentration.py --temperatures calibrated 1 --steps 500

Fits Bayesian BPS with Bayesian heads on seed 0's ten shapes sketches, with the study's tuned
recipe (#15, item 5's setup, `experiments.small_n`), once per temperature λ: "calibrated" is the
sandwich rule's λ (the package's default), a number is a fixed λ. At each checkpoint it prints
the validation edge F1 (64 sketches, DDIM 20) and each head's ‖μ‖/‖σ‖
(`SteeringGuide.head_concentration`): near 0, every draw of the heads is a random pattern. A
table goes to OUT/concentration.csv.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace
from pathlib import Path

from bayes_bps.experiments import small_n
from bayes_bps.experiments.held_out import score
from bayes_bps.experiments.methods import fit_method
from bayes_bps.experiments.recipes import read_settings
from bayes_bps.experiments.records import append_rows

COLUMNS = ["temperature", "calibrated", "step", "edge_f1",
           "concentration_median", "concentration_min", "concentration_max"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--temperatures", nargs="+", default=["calibrated", "1"])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--checkpoints", type=int, nargs="+", default=None, help="default: half way and the end")
    parser.add_argument("--settings", type=Path, default=Path("benchmarks/data_efficiency/settings.csv"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/bayesian_value/heads_concentration"))
    args = parser.parse_args()
    checkpoints = set(args.checkpoints or (args.steps // 2, args.steps))

    setup = small_n.SmallN(out=args.out, recipes=read_settings(args.settings, ["bayesian"]))
    fits = small_n.Fits(setup)
    validation = fits.held_out("validation", setup.validation_conditions)
    for label in args.temperatures:
        temperature = None if label == "calibrated" else float(label)
        options = replace(small_n.fit_options(setup, "bayesian-heads", 1.0, setup.search_seed, args.steps),
                          temperature=temperature)
        rows = []

        def on_checkpoint(fitted, step: int, seconds: float, temperature=temperature, rows=rows) -> None:
            scored = score(fitted, fits.base, setup.task, validation, ddim_steps=setup.ddim_steps,
                           seed=setup.search_seed, scale=fits.scale("bayesian-heads"))
            concentration = list(fitted.objective.guide.head_concentration().values())
            rows.append({"temperature": f"{float(fitted.objective.model.temperature):.3g}",
                         "calibrated": temperature is None, "step": step,
                         "edge_f1": f"{float(scored.scores['edge_f1'].mean()):.4f}",
                         "concentration_median": f"{statistics.median(concentration):.3g}",
                         "concentration_min": f"{min(concentration):.3g}",
                         "concentration_max": f"{max(concentration):.3g}"})
            print(rows[-1], flush=True)

        fit_method("bayesian", fits.base, fits.pairs(setup.search_seed), options, checkpoints=checkpoints,
                   on_checkpoint=on_checkpoint)
        append_rows(args.out / "concentration.csv", COLUMNS, rows)


if __name__ == "__main__":
    main()
