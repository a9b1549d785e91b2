"""What every figure script shares: its two flags, and the runs it reads.

    python paper_figures/<figure>.py [--fast] [--out paper_figures/out]

Full mode reads the saved runs (fitting any that are missing; see bayes_bps/viz/figure_runs.py).
--fast fits tiny stand-ins into OUT/fast-runs/ in seconds, to check that the figure builds:
its pictures and numbers mean nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the scripts run from a checkout, installed or not

from bayes_bps.viz.figure_runs import FigureInputs, figure_inputs  # noqa: E402  (after the path)

DDIM_STEPS = {True: 5, False: 50}  # sampling steps in fast and full mode


def parse_args(doc: str, argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--fast", action="store_true",
                        help="tiny runs in OUT/fast-runs: checks the code, not the science")
    parser.add_argument("--out", type=Path, default=ROOT / "paper_figures" / "out", help="folder for the PDF and PNG")
    return parser.parse_args(argv)


def work_folder(args: argparse.Namespace) -> Path | None:
    """Where fast mode makes its tiny base, runs and study: $BAYES_BPS_FAST_WORK if set (a folder
    shared with the notebooks' fast mode), else OUT/fast-runs; None in full mode."""
    if not args.fast:
        return None
    shared = os.environ.get("BAYES_BPS_FAST_WORK")
    return Path(shared) if shared else args.out.resolve() / "fast-runs"


def inputs_for(args: argparse.Namespace) -> FigureInputs:
    """The runs behind the figures: tiny ones in OUT/fast-runs, or the saved ones under the root."""
    return figure_inputs(fast=args.fast, work=work_folder(args), root=ROOT)
