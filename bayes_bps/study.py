"""Studies over fitted methods: `python -m bayes_bps.study tune|data-efficiency`.

    python -m bayes_bps.study tune --out benchmarks/data_efficiency            # 1. tune on validation
    python -m bayes_bps.study data-efficiency --out benchmarks/data_efficiency # 2. the grid on test
    python -m bayes_bps.study data-efficiency --domains digits --seeds 0 --n 10
    python -m bayes_bps.study data-efficiency --inception-weights pt_inception.pth   # real FID

The stages are described in `experiments/tuning.py` and `experiments/data_efficiency.py`.
Each invocation resumes the files in --out and rebuilds what derives from them: after tune,
`curves.png` and `settings.csv`; after the grid, `paired.csv`, `paired.md`, `paired.png` (each
method − deterministic BPS on each task's primary score), `table.md` and
`data_efficiency.png`/`.pdf`. It writes its options to `options-<stage>-<domains>.json` and
appends its wall time to `wall_time.csv`. `data-efficiency --tables-only` rebuilds only the
derived files from the cells finished so far, and writes neither record: it computed no cell.
"""

from __future__ import annotations

import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from .experiments.data_efficiency import data_efficiency, read_results
from .experiments.options import StudyOptions
from .experiments.records import append_rows, read_rows, write_rows
from .experiments.tables import PAIRED_COLUMNS, paired_rows, paired_table, summary_table
from .experiments.tuning import tune
from .metrics import PRIMARY_SCORE
from .utils import options as option_files
from .utils.cli import fail
from .viz.figures import plot_data_efficiency, plot_learning_curves, plot_paired_differences, save_figure

WALL_TIME_COLUMNS = ["stage", "domains", "started", "wall_seconds", "machine"]


def main(argv: list[str] | None = None) -> Path:
    try:
        options, _ = option_files.parse(StudyOptions, argv, "python -m bayes_bps.study", __doc__.splitlines()[0])
    except ValueError as error:
        fail(error)
    out, started, clock = options.out, datetime.now(timezone.utc), time.perf_counter()
    domains = options.tune_domain if options.study == "tune" else "-".join(options.domains)
    computes = options.study == "tune" or not options.tables_only
    if computes:  # one record per invocation: the domains may run as separate processes into one folder
        option_files.write(options, out / f"options-{options.study}-{domains}.json")
    try:
        if options.study == "tune":
            tune(options)
            save_figure(plot_learning_curves(read_rows(out / "curves.csv"), PRIMARY_SCORE[options.tune_task]),
                        out, "curves")
        else:
            rows = read_results(out) if options.tables_only else data_efficiency(options)
            if not rows:
                raise ValueError(f"{out} holds no finished cell (results-<domain>.csv) to tabulate")
            paired = paired_rows(out, resamples=options.bootstrap_resamples)
            write_rows(out / "paired.csv", PAIRED_COLUMNS, paired)
            (out / "paired.md").write_text(paired_table(paired))
            save_figure(plot_paired_differences(paired), out, "paired")
            (out / "table.md").write_text(summary_table(rows))
            save_figure(plot_data_efficiency(rows), out, "data_efficiency")
    except ValueError as error:
        fail(error)
    if not computes:
        print(f"rebuilt the tables of {out}")
        return out
    append_rows(out / "wall_time.csv", WALL_TIME_COLUMNS, [{
        "stage": options.study, "domains": domains,
        "started": started.isoformat(timespec="seconds"), "wall_seconds": f"{time.perf_counter() - clock:.0f}",
        "machine": f"{torch.get_num_threads()} CPU threads, {platform.machine()}"}])
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
