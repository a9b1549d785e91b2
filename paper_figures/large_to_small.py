"""Figure 5: from the large probability space (base samples for a caption) to the small one.

The small one: steered samples for one of the caption's sketches."""

from __future__ import annotations

from common import DDIM_STEPS, inputs_for, parse_args

from bayes_bps.experiments.analysis import large_to_small
from bayes_bps.training import load_run
from bayes_bps.viz.figures import plot_large_to_small, save_figure


def main(argv: list[str] | None = None) -> list:
    args = parse_args(__doc__, argv)
    run = load_run(inputs_for(args).default, device="cpu")
    result = large_to_small(run, 4 if args.fast else 32, steps=DDIM_STEPS[args.fast])
    print(result.statistics.to_string())
    return save_figure(plot_large_to_small(result), args.out, "large_to_small")


if __name__ == "__main__":
    print(*main(), sep="\n")
