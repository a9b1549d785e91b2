"""Studies over fitted methods: `python -m bayes_bps.study data-efficiency`.

    python -m bayes_bps.study data-efficiency                       # the full grid (hours on 2 CPU cores)
    python -m bayes_bps.study data-efficiency --domains digits --seeds 0 --n 10
    python -m bayes_bps.study data-efficiency --inception-weights pt_inception.pth   # real FID

The study is described in `experiments/data_efficiency.py`. Each invocation resumes the CSVs in
--out, then rebuilds `table.md` and `data_efficiency.png`/`.pdf` from every CSV there, and
writes its options to `options-<domains>.json`.
"""

from __future__ import annotations

from pathlib import Path

from .experiments.data_efficiency import StudyOptions, data_efficiency, summary_table
from .utils import options as option_files
from .utils.cli import fail
from .viz.figures import plot_data_efficiency, save_figure


def main(argv: list[str] | None = None) -> Path:
    try:
        options, _ = option_files.parse(StudyOptions, argv, "python -m bayes_bps.study", __doc__.splitlines()[0])
    except ValueError as error:
        fail(error)
    # one record per invocation: the domains may run as separate processes into one folder
    option_files.write(options, options.out / f"options-{'-'.join(options.domains)}.json")
    rows = data_efficiency(options)
    (options.out / "table.md").write_text(summary_table(rows))
    save_figure(plot_data_efficiency(rows), options.out, "data_efficiency")
    print(f"wrote {options.out}")
    return options.out


if __name__ == "__main__":
    main()
