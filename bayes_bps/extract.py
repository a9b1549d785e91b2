"""Build a paired sketch dataset from a folder of your own images.

    python -m bayes_bps.extract IMAGES_DIR OUT_DIR --caption "a photo" --resolution 64

Writes OUT_DIR/source (Canny sketches), OUT_DIR/target (the images) and OUT_DIR/prompt.json,
the layout `--data folder:OUT_DIR` reads.
"""

import argparse
from pathlib import Path

from .data import DatasetError, build_sketch_dataset


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--caption", default="", help="prompt written for every image")
    parser.add_argument("--resolution", type=int, default=None, help="centre-crop and resize to this size")
    args = parser.parse_args(argv)
    try:
        out_dir = build_sketch_dataset(args.images_dir, args.out_dir, args.caption, args.resolution)
    except DatasetError as error:
        parser.error(str(error))  # a one-line message and exit status 2, not a traceback
    print(f"wrote {out_dir / 'prompt.json'}")


if __name__ == "__main__":
    main()
