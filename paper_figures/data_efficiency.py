"""Figure 2: the data-efficiency study, every metric against the number of training pairs N per method."""

from __future__ import annotations

from common import ROOT, parse_args, work_folder

from bayes_bps.viz.figure_runs import study_rows
from bayes_bps.viz.figures import plot_data_efficiency, save_figure


def main(argv: list[str] | None = None) -> list:
    args = parse_args(__doc__, argv)
    rows, folder = study_rows(args.fast, work_folder(args), root=ROOT)
    print(f"data efficiency: {len(rows)} rows from {folder}")
    return save_figure(plot_data_efficiency(rows), args.out, "data_efficiency")


if __name__ == "__main__":
    print(*main(), sep="\n")
