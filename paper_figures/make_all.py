"""Rebuild every paper figure: `python paper_figures/make_all.py [--fast] [--out DIR]`."""

from __future__ import annotations

import time

import bayesian_value
import data_efficiency
import large_to_small
import port_weights
import profiles_and_heads
import sample_grids
import weight_profiles
from common import parse_args

FIGURES = [port_weights, data_efficiency, sample_grids, weight_profiles, large_to_small, bayesian_value,
           profiles_and_heads]


def main(argv: list[str] | None = None) -> list:
    parse_args(__doc__, argv)  # checks the flags before anything runs
    written = []
    for figure in FIGURES:
        start = time.perf_counter()
        paths = figure.main(argv)
        print(f"{figure.__name__}: {time.perf_counter() - start:.1f} s -> {', '.join(map(str, paths))}")
        written.extend(paths)
    return written


if __name__ == "__main__":
    main()
