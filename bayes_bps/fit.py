"""Fit Bayesian Power Steering: `python -m bayes_bps.fit`.

    python -m bayes_bps.fit                          # embedded default: shapes base, sketch, 40 pairs, lite
    python -m bayes_bps.fit --domain digits --base digits --n-train 10
    python -m bayes_bps.fit --domain folder:PATH --base /models/stable-diffusion-v1-5
    python -m bayes_bps.fit --config run.yaml --seed 3   # flags override the file
    python -m bayes_bps.fit --deterministic              # the official recipe, same loop
    python -m bayes_bps.fit --out runs/x --resume        # continue from the latest checkpoint
    python -m bayes_bps.fit --dry-run                    # print the resolved options and exit

The run folder gets options.json, run.json, checkpoints/, loss.csv and loss.png
(`training/fitting.py`), and at the end the posterior (posterior.nc, posterior_summary.csv,
fusion_forest.png; Bayesian runs), samples.png and evaluation.json (`viz/report.py`).
"""

from __future__ import annotations

from .training import FitOptions, NonFiniteLossError
from .training.fitting import RunFolderError
from .utils import options as option_files
from .utils.cli import fail
from .viz.report import fit_and_report


def main(argv: list[str] | None = None) -> None:
    try:
        options, switches = option_files.parse(
            FitOptions, argv, "python -m bayes_bps.fit", "Fit Bayesian Power Steering on a frozen diffusion base.",
            switches={"resume": "continue the run in --out from its latest checkpoint",
                      "dry_run": "print the resolved options and exit"}, config_flag=True)
        if switches["dry_run"]:
            print(option_files.to_json(options), end="")
            print(f"# run folder: {options.run_dir}")
            return
        run_dir = fit_and_report(options, switches["resume"], switches["explicit"])
    except (ValueError, FileNotFoundError, RunFolderError, NonFiniteLossError) as error:
        fail(error)
    print(f"wrote {run_dir}")


if __name__ == "__main__":
    main()
