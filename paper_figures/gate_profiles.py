"""Figure 4: gates g_k(t) = sigmoid(a_k + b_k τ(t)) per port over t, posterior median and band against the prior."""

from __future__ import annotations

import torch
from common import inputs_for, parse_args

from bayes_bps.experiments.analysis import coefficient_samples, gate_curves
from bayes_bps.training import load_run
from bayes_bps.viz.figures import plot_gate_profiles, save_figure


def main(argv: list[str] | None = None) -> list:
    args = parse_args(__doc__, argv)
    run = load_run(inputs_for(args).default, device="cpu")
    timesteps = torch.arange(0, run.base.num_train_timesteps, 10)
    posterior, prior = coefficient_samples(run)
    figure = plot_gate_profiles(timesteps, gate_curves(run, posterior, timesteps),
                                gate_curves(run, prior, timesteps), run.objective.model.port_names)
    return save_figure(figure, args.out, "gate_profiles")


if __name__ == "__main__":
    print(*main(), sep="\n")
