"""Datasets of (image, condition, caption) triples, and `make_dataset` to pick one by name.

Convention shared by every dataset (a `torch.utils.data.Dataset`):

- `dataset[i]` returns `(target, condition, caption)`: `target` float32 (C, H, W) in [-1, 1],
  channels first; `condition` float32 (Cc, H, W) in [0, 1]; `caption` a str;
- attributes `task`, `resolution` (H == W), `image_channels` (C) and `condition_channels` (Cc);
- `captions()` returns every caption without decoding images (to build a vocabulary);
- the built-in domains have the splits of `splits.py`: train, validation, test, reference.

The domains (`domains.DOMAINS`): "shapes", procedural coloured shapes with exact conditions,
unlimited; "digits", scikit-learn's 1797 real handwritten digits (1 channel); "folder:PATH",
your pairs in the ControlNet layout (see `folder.py`); `build_sketch_dataset` makes one from a
folder of plain images.
"""

from torch.utils.data import Dataset

from .digits import DigitsDataset
from .domains import BUILT_IN_DOMAINS, DOMAINS, Domain, check_task, domain_name, parse_domain
from .extractors import build_sketch_dataset, sketch_from_image
from .folder import DatasetError, FolderDataset
from .shapes import ShapesDataset
from .splits import HELD_OUT, SPLITS
from .tasks import TASKS

__all__ = [
    "BUILT_IN_DOMAINS",
    "DOMAINS",
    "DatasetError",
    "DigitsDataset",
    "Domain",
    "FolderDataset",
    "HELD_OUT",
    "SPLITS",
    "ShapesDataset",
    "TASKS",
    "build_sketch_dataset",
    "check_task",
    "domain_name",
    "make_dataset",
    "parse_domain",
    "sketch_from_image",
]


def make_dataset(
    domain: str,
    task: str = "sketch",
    *,
    split: str = "train",
    length: int | None = None,
    seed: int = 0,
    resolution: int | None = None,
    image_channels: int | None = None,
) -> Dataset:
    """Build the dataset named by `domain` ("shapes", "digits" or "folder:PATH").

    `length=None` means the dataset's default (1000 scenes for shapes, the whole split for
    digits, every pair for a folder). `resolution=None` means 32 for shapes and digits and is
    an error for a folder. A folder has no split and no randomness: `split` must be "train"
    and `seed` is unused; its targets are decoded to `image_channels` (the base's: 1 for a
    grayscale base, 3 by default). A built-in domain's channels are its own, and asking for
    others is an error.
    """
    spec, (registered, path) = domain, parse_domain(domain)
    check_task(spec, task)
    # Pass only what the caller set, so each dataset keeps its own defaults.
    options = {key: value for key, value in {"length": length, "resolution": resolution}.items()
               if value is not None}
    if registered.built_in:
        dataset = registered.dataset(task, split=split, seed=seed, **options)
        if image_channels is not None and image_channels != dataset.image_channels:
            raise ValueError(f"domain {spec!r} has {dataset.image_channels}-channel images; a base that draws "
                             f"{image_channels}-channel images cannot be fitted on it")
        return dataset
    if resolution is None:
        raise ValueError(f"domain {spec!r} needs a resolution (images are resized to it)")
    if split != "train":
        raise ValueError(f"a folder dataset has no {split!r} split; use split='train' and a separate folder")
    return registered.dataset(path, task=task, image_channels=image_channels or 3, **options)
