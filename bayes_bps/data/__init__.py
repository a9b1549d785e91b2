"""Datasets of (image, condition, caption) triples, and ``make_dataset`` to pick one by name.

Convention shared by every dataset (a ``torch.utils.data.Dataset``):

- ``dataset[i]`` returns ``(target, condition, caption)``:
  ``target`` float32 (C, H, W) in [-1, 1], channels first;
  ``condition`` float32 (Cc, H, W) in [0, 1];
  ``caption`` a str.
- attributes ``task``, ``resolution`` (H == W), ``image_channels`` (C) and
  ``condition_channels`` (Cc);
- ``captions()`` returns every caption without decoding images (to build a vocabulary).

Domains:

- ``"shapes"``: procedural coloured shapes with exact conditions, unlimited size;
- ``"digits"``: scikit-learn's 1797 real handwritten digits (1 channel);
- ``"folder:PATH"``: user pairs in the ControlNet layout (see ``folder.py``);
  ``build_sketch_dataset`` makes one from a folder of plain images.
"""

from torch.utils.data import Dataset

from bayes_bps.data.digits import DigitsDataset
from bayes_bps.data.extractors import build_sketch_dataset, sketch_from_image
from bayes_bps.data.folder import DatasetError, FolderDataset
from bayes_bps.data.shapes import ShapesDataset

__all__ = [
    "DOMAIN_TASKS",
    "DatasetError",
    "DigitsDataset",
    "FolderDataset",
    "ShapesDataset",
    "build_sketch_dataset",
    "make_dataset",
    "sketch_from_image",
]

DOMAIN_TASKS: dict[str, tuple[str, ...]] = {
    "shapes": ShapesDataset.TASKS,
    "digits": DigitsDataset.TASKS,
    "folder": FolderDataset.TASKS,
}


def make_dataset(
    domain: str,
    task: str = "sketch",
    *,
    split: str = "train",
    length: int | None = None,
    seed: int = 0,
    resolution: int | None = None,
) -> Dataset:
    """Build the dataset named by ``domain`` ("shapes", "digits" or "folder:PATH").

    ``length=None`` means the dataset's default (1000 scenes for shapes, the whole
    split for digits, every pair for a folder). ``resolution=None`` means 32 for
    shapes and digits and is an error for a folder. A folder has no split and
    no randomness: ``split`` must be "train" and ``seed`` is unused.
    """
    name, _, path = domain.partition(":")
    if domain not in ("shapes", "digits") and not (name == "folder" and path):
        raise ValueError(f"unknown domain {domain!r}; known domains: 'shapes', 'digits', 'folder:PATH'")
    if task not in DOMAIN_TASKS[name]:
        tasks = ", ".join(DOMAIN_TASKS[name])
        raise ValueError(f"domain {name!r} has no task {task!r}; its tasks are {tasks}")
    # Pass only what the caller set, so each dataset keeps its own defaults.
    set_options = {"length": length, "resolution": resolution}
    options = {key: value for key, value in set_options.items() if value is not None}
    if name == "shapes":
        return ShapesDataset(task, split=split, seed=seed, **options)
    if name == "digits":
        return DigitsDataset(task, split=split, seed=seed, **options)
    if resolution is None:
        raise ValueError(f"domain {domain!r} needs a resolution (images are resized to it)")
    if split != "train":
        raise ValueError(f"a folder dataset has no {split!r} split; use split='train' and a separate folder")
    return FolderDataset(path, task=task, **options)
