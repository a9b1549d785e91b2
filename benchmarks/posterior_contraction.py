"""Does the posterior contract as the number of training pairs N grows? Fits at several N.

    python benchmarks/posterior_contraction.py --n 10 40 160 --out benchmarks/posterior_contraction

Fits the default Bayesian model (shapes base, sketch, `lite`, 1000 steps, seed 0) at each N into
OUT/n<N>/ (resumed if a fit is there already; training only, no closing evaluation), then writes
OUT/contraction.csv (posterior sd / prior sd per coefficient and N, with each fit's calibrated λ)
and OUT/contraction.png: the median and range of the sd ratio per coefficient group against N.
"""

from __future__ import annotations

import argparse
import csv
import statistics
from dataclasses import replace
from pathlib import Path

from matplotlib.figure import Figure

from bayes_bps.experiments.analysis import posterior_shift
from bayes_bps.training import FitOptions, load_run
from bayes_bps.training.checkpoint import latest_checkpoint
from bayes_bps.training.fitting import fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", nargs="+", type=int, default=[10, 40, 160])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/posterior_contraction"))
    args = parser.parse_args()
    rows, joint_kl = [], {}
    for n in args.n:
        options = replace(FitOptions(), n_train=n, steps=args.steps, out=str(args.out / f"n{n}"))
        checkpoint = latest_checkpoint(options.run_dir)
        if checkpoint is None or int(checkpoint.name.split("_")[1]) < args.steps:
            fit(options, resume=checkpoint is not None)
        run = load_run(options.run_dir, device="cpu")
        temperature = float(run.objective.model.temperature)  # each fit calibrates its own λ
        joint_kl[n] = run.objective.guide.total_kl()
        table = posterior_shift(run).reset_index()
        rows += [{"n_train": n, "temperature": temperature, **row} for row in table.to_dict("records")]
    with open(args.out / "contraction.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    figure = Figure(figsize=(5.5, 3.8), layout="constrained")
    axis = figure.subplots()
    for coefficient in dict.fromkeys(row["coefficient"] for row in rows):
        ratios = {n: sorted(r["sd_ratio"] for r in rows if r["coefficient"] == coefficient and r["n_train"] == n)
                  for n in args.n}
        medians = [statistics.median(ratios[n]) for n in args.n]
        axis.plot(args.n, medians, marker="o", label=f"{coefficient} (median over ports)")
        axis.fill_between(args.n, [ratios[n][0] for n in args.n], [ratios[n][-1] for n in args.n], alpha=0.15)
    axis.axhline(1.0, color="0.5", linestyle="--", label="prior")
    axis.set_xscale("log")
    axis.set_xticks(args.n, [str(n) for n in args.n])
    axis.set(xlabel="training pairs N", ylabel="posterior sd / prior sd", title="posterior contraction with N")
    axis.legend(fontsize="small")
    figure.savefig(args.out / "contraction.png", dpi=120)
    for n in args.n:
        at_n = [r for r in rows if r["n_train"] == n]
        ratios = sorted(r["sd_ratio"] for r in at_n)
        print(f"N = {n}: λ = {at_n[0]['temperature']:.3g}, median sd ratio {statistics.median(ratios):.3f} over "
              f"{len(ratios)} coefficients, KL(q ‖ p) {joint_kl[n]:.2f} nats")


if __name__ == "__main__":
    main()
