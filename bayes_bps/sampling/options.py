"""The options of `python -m bayes_bps.sample`: a bare base, or a fitted run's posterior predictive."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..base import DEFAULT_GUIDANCE_SCALE, SCHEDULERS
from ..utils.options import option

RUN_ONLY = ("split", "condition", "draws", "checkpoint")


@dataclass
class SampleOptions:
    run_dir: Path | None = option(None, "a fit's run folder, or a folder written by `python -m bayes_bps.export`: "
                                  "sample its posterior predictive (omit to sample a bare --base)", positional=True)
    base: str | None = option(None, "without RUN_DIR: embedded base name or diffusers folder [shapes]")
    caption: list[str] = option([], "caption (repeatable); default: the captions of the base's validation "
                                "split, or of the run's --split conditions", repeat=True)
    num_captions: int = option(6, "without RUN_DIR: validation captions when none are given", low=1)
    n: int | None = option(None, "samples per caption [6]; with RUN_DIR: conditions from --split [8]", low=1)
    split: str | None = option(None, "with RUN_DIR: where conditions come from: the run's evaluation split "
                               "(a folder run's --eval-domain), or its train pairs (pairs.pt) [held-out]",
                               choices=("held-out", "train"))
    condition: list[Path] = option([], "with RUN_DIR: a condition image (repeatable) instead of --split; "
                                   "needs --caption, once or once per condition", repeat=True)
    draws: int | None = option(None, "with RUN_DIR: posterior draws per condition [8] (a deterministic run "
                               "gives one)", low=1)
    checkpoint: Path | None = option(None, "with RUN_DIR: checkpoint folder [the latest]")
    steps: int = option(50, "sampling steps", low=1, high=1000)
    scheduler: str = option("ddim", "sampler", choices=SCHEDULERS)
    guidance_scale: float = option(DEFAULT_GUIDANCE_SCALE, "classifier-free guidance (1: off)", above=0)
    seed: int = option(0, "seed of the initial noise and the posterior draws", low=0)
    out: Path | None = option(None, "PNG grid to write [samples.png]; with RUN_DIR: folder to write "
                              "[RUN_DIR/samples]")

    def validate(self) -> None:
        if self.run_dir is None:
            given = [name for name in RUN_ONLY if getattr(self, name) not in (None, [])]
            if given:
                raise ValueError(f"--{given[0]} needs a RUN_DIR")
        elif self.base is not None:
            raise ValueError("--base: a run samples the base it was fitted on (its options.json)")
        if self.condition and (self.n is not None or self.split is not None):
            raise ValueError("--n and --split choose conditions from the run's data; not with --condition")
        if self.condition and not self.caption:
            raise ValueError("--condition needs --caption: one for every condition, or one per condition")
