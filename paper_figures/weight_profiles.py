"""Figure 4: port weights w_k(t) = w_k exp(s_k τ(t)) over t, posterior median and band against the prior."""

from __future__ import annotations

import torch
from common import inputs_for, parse_args

from bayes_bps.experiments.analysis import coefficient_samples, weight_curves
from bayes_bps.training import load_run
from bayes_bps.viz.figures import plot_weight_profiles, save_figure


def main(argv: list[str] | None = None) -> list:
    args = parse_args(__doc__, argv)
    run = load_run(inputs_for(args).default, device="cpu")
    timesteps = torch.arange(0, run.base.num_train_timesteps, 10)
    posterior, prior = coefficient_samples(run)
    model = run.objective.model
    figure = plot_weight_profiles(timesteps, weight_curves(model, posterior, timesteps),
                                  weight_curves(model, prior, timesteps), model.port_names)
    return save_figure(figure, args.out, "weight_profiles")


if __name__ == "__main__":
    print(*main(), sep="\n")
