"""Figure 2: the data-efficiency study: every metric against the number of training pairs N per
method (data_efficiency), and each method − deterministic BPS on each task's primary score with
its paired interval (data_efficiency_paired)."""

from __future__ import annotations

from common import ROOT, parse_args, work_folder

from bayes_bps.viz.figure_runs import study_paired_rows, study_rows
from bayes_bps.viz.figures import plot_data_efficiency, plot_paired_differences, save_figure


def main(argv: list[str] | None = None) -> list:
    args = parse_args(__doc__, argv)
    rows, folder = study_rows(args.fast, work_folder(args), root=ROOT)
    print(f"data efficiency: {len(rows)} rows from {folder}")
    paired = study_paired_rows(folder)
    return [*save_figure(plot_data_efficiency(rows), args.out, "data_efficiency"),
            *save_figure(plot_paired_differences(paired), args.out, "data_efficiency_paired")]


if __name__ == "__main__":
    print(*main(), sep="\n")
