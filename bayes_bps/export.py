"""Export a fitted run as a diffusers pipeline folder: `python -m bayes_bps.export RUN_DIR OUT`.

    python -m bayes_bps.export runs/shapes-sketch-bayes-n40-seed0 exported/shapes-sketch

Then, with no training data needed:

    from bayes_bps import BPSPipeline
    pipe = BPSPipeline.from_pretrained("exported/shapes-sketch")
    out = pipe("a red circle", image=sketch, num_posterior_draws=8)

What the folder holds is described in `pipelines/export.py`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .pipelines import export_run
from .utils.cli import fail


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="python -m bayes_bps.export", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a fit's run folder")
    parser.add_argument("out", type=Path, help="the pipeline folder to write")
    args = parser.parse_args(argv)
    try:
        out = export_run(args.run_dir, args.out)
    except (ValueError, FileNotFoundError) as error:
        fail(error)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
