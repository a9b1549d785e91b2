"""Pretrain an embedded base from scratch: `python -m bayes_bps.pretrain`.

    python -m bayes_bps.pretrain --domain shapes --out bayes_bps/bases/shapes
    python -m bayes_bps.pretrain --domain digits --out bayes_bps/bases/digits
    python -m bayes_bps.pretrain --data folder:PATH --resolution 64 --out my_base

What a run trains and writes is described in `base/pretraining/build.py`.
"""

from __future__ import annotations

import sys

from .base.pretraining import PretrainOptions, pretrain
from .utils import options as option_files
from .utils.cli import fail


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        options, _ = option_files.parse(PretrainOptions, argv, "python -m bayes_bps.pretrain",
                                        "Pretrain an embedded base from scratch.")
        out = pretrain(options, argv)
    except (ValueError, FileNotFoundError) as error:
        fail(error)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
