"""Build a paired sketch dataset from a folder of your own images.

    python -m bayes_bps.extract IMAGES_DIR OUT_DIR --caption "a photo" --resolution 64

Writes OUT_DIR/source (Canny sketches), OUT_DIR/target (the images), OUT_DIR/prompt.json (the
layout `--domain folder:OUT_DIR` reads) and OUT_DIR/options.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .data import build_sketch_dataset
from .utils import options as option_files
from .utils.cli import fail
from .utils.options import option


@dataclass
class ExtractOptions:
    images_dir: Path = option(help="folder of images", positional=True)
    out_dir: Path = option(help="dataset folder to write", positional=True)
    caption: str = option("", "prompt written for every image")
    resolution: int | None = option(None, "centre-crop and resize to this size", low=1)


def main(argv: list[str] | None = None) -> None:
    try:
        options, _ = option_files.parse(ExtractOptions, argv, "python -m bayes_bps.extract", __doc__.splitlines()[0])
        out_dir = build_sketch_dataset(options.images_dir, options.out_dir, options.caption, options.resolution)
        option_files.write(options, out_dir / "options.json")
    except ValueError as error:  # DatasetError included: a one-line message, not a traceback
        fail(error)
    print(f"wrote {out_dir / 'prompt.json'}")


if __name__ == "__main__":
    main()
