"""A run's samples on disk, and condition images read from disk.

`write_samples` writes, per condition i: grid_i.png (condition | K draws | posterior mean |
per-pixel posterior sd, on one colour scale), mean_i.png and sd_i.png (sd in image units,
unscaled), and samples.pt with every tensor.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..base import FrozenBase
from ..data import BUILT_IN_DOMAINS, make_dataset
from ..utils.grids import predictive_grid, save_png
from ..utils.images import ImageFileError, load_png, to_unit
from ..utils.images import save_png as save_image_png
from .predictive import predictive_summary


def load_condition(path: Path, channels: int, resolution: int) -> torch.Tensor:
    """A condition image as the run's conditions are: (channels, resolution, resolution) in [0, 1].

    Nothing is resized or converted between grey and colour: a mismatch is an error naming
    the file, since a silently adapted condition would steer with something else."""
    try:
        return load_png(path, channels, resolution, wanted_by="this run takes")
    except ImageFileError as error:
        raise ValueError(f"condition {error} (the run's condition channels, the base's resolution)") from error


def write_samples(out: Path, draws: torch.Tensor, conditions: torch.Tensor, captions: list[str],
                  **facts) -> Path:
    """The grids, mean and sd PNGs and samples.pt of the module docstring; `facts` go into samples.pt."""
    out.mkdir(parents=True, exist_ok=True)
    draws = draws.cpu()
    mean, sd = predictive_summary(draws)
    for i, caption in enumerate(captions):
        columns = {**{f"draw {k + 1}": draws[k, i:i + 1] for k in range(len(draws))},
                   "posterior mean": mean[i:i + 1]}
        save_png(predictive_grid(conditions[i:i + 1].cpu(), [caption], columns, sd[i:i + 1]),
                 out / f"grid_{i:03d}.png")
        save_image_png(to_unit(mean[i]), out / f"mean_{i:03d}.png")
        save_image_png(sd[i], out / f"sd_{i:03d}.png")
    torch.save({"draws": draws, "mean": mean, "std": sd, "conditions": conditions.cpu(),
                "captions": list(captions), **facts}, out / "samples.pt")
    return out


def held_out_captions(base: FrozenBase, count: int) -> list[str]:
    """Captions of the base's own validation split, for bases pretrained on a built-in domain."""
    if base.domain not in BUILT_IN_DOMAINS:
        raise ValueError("this base was not pretrained on a built-in domain: pass --caption")
    dataset = make_dataset(base.domain, split="validation", length=count, resolution=base.resolution)
    return [dataset[i][2] for i in range(count)]
