"""Figure 3: posterior-predictive samples with uncertainty: condition | draws | mean | per-pixel sd."""

from __future__ import annotations

from common import DDIM_STEPS, inputs_for, parse_args

from bayes_bps.experiments.analysis import predictive_samples
from bayes_bps.training import load_run
from bayes_bps.viz.figures import plot_predictive_grid, save_figure


def main(argv: list[str] | None = None) -> list:
    args = parse_args(__doc__, argv)
    run = load_run(inputs_for(args).default, device="cpu")
    count, draws = (2, 3) if args.fast else (6, 8)
    predictive = predictive_samples(run, count, draws, steps=DDIM_STEPS[args.fast])
    return save_figure(plot_predictive_grid(predictive), args.out, "sample_grids")


if __name__ == "__main__":
    print(*main(), sep="\n")
