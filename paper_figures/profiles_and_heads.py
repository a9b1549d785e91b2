"""Figure 7: the Bayesian layer as a source of settings: empirical-Bayes profiles and Bayesian heads.

It plots what `benchmarks/bayesian_value.py --items profiles heads` measured and committed to
`benchmarks/bayesian_value/` (eb_profiles.json, heads.json), in full and fast mode alike: those
are hours of fits, so nothing is refitted here. A panel whose measurement is not there yet says
so instead of failing.
"""

from __future__ import annotations

import json

from common import ROOT, parse_args

from bayes_bps.viz.figures import plot_profiles_and_heads, save_figure

MEASURED = ROOT / "benchmarks" / "bayesian_value"


def _read(name: str) -> dict | None:
    path = MEASURED / name
    return json.loads(path.read_text()) if path.is_file() else None


def main(argv: list[str] | None = None) -> list:
    args = parse_args(__doc__, argv)
    figure = plot_profiles_and_heads(_read("eb_profiles.json"), _read("heads.json"))
    return save_figure(figure, args.out, "profiles_and_heads")


if __name__ == "__main__":
    print(*main(), sep="\n")
