"""Figure 6: what the Bayesian layer buys: failure detection, time gates and port pruning.

It plots what `benchmarks/bayesian_value.py` measured and committed to
`benchmarks/bayesian_value/` (detection.csv, gates.json, pruning.json), in full and fast mode
alike: the measurement is the benchmark's, which takes about an hour, so nothing is refitted here.
"""

from __future__ import annotations

import json

import pandas as pd
from common import ROOT, parse_args

from bayes_bps.viz.figures import plot_bayesian_value, save_figure

MEASURED = ROOT / "benchmarks" / "bayesian_value"
THRESHOLD = 0.8  # the strictest failure threshold of detection.json: the most failures to draw a ROC from


def main(argv: list[str] | None = None) -> list:
    args = parse_args(__doc__, argv)
    paths = [MEASURED / name for name in ("detection.csv", "gates.json", "pruning.json")]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)} missing: run `python benchmarks/bayesian_value.py` first")
    detection, gates, pruning = pd.read_csv(paths[0]), *(json.loads(path.read_text()) for path in paths[1:])
    return save_figure(plot_bayesian_value(detection, gates, pruning, THRESHOLD), args.out, "bayesian_value")


if __name__ == "__main__":
    print(*main(), sep="\n")
