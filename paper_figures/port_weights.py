"""Figure 1: fusion coefficient per port, the head-heavy prior against the posterior at both temperatures."""

from __future__ import annotations

from common import inputs_for, parse_args

from bayes_bps.experiments.analysis import coefficient_samples
from bayes_bps.training import load_run
from bayes_bps.viz.figures import plot_port_weights, save_figure


def main(argv: list[str] | None = None) -> list:
    args = parse_args(__doc__, argv)
    inputs = inputs_for(args)
    samples, port_names = {}, []
    for run_dir in (inputs.default, inputs.tempered):
        run = load_run(run_dir, device="cpu")
        temperature = run.objective.model.temperature
        samples[f"λ = {temperature:.2g}"] = coefficient_samples(run)
        port_names = run.objective.model.port_names
    return save_figure(plot_port_weights(samples, port_names), args.out, "port_weights")


if __name__ == "__main__":
    print(*main(), sep="\n")
