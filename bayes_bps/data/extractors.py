"""Condition extractors: turn plain images into sketches, and folders into sketch datasets.

``sketch_from_image`` runs skimage's Canny detector on each colour channel and
keeps a pixel if any channel has an edge there. Per-channel rather than
luminance because some colour pairs are nearly equiluminant (pure blue on the
dark shapes background differs by ~0.01 in luminance) and would vanish.

The command line is ``python -m bayes_bps.extract`` (see ``bayes_bps/extract.py``).
"""

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from skimage.feature import canny
from torch import Tensor

from .folder import DatasetError, read_image

CANNY_SIGMA = 1.0
# Absolute thresholds on skimage's Sobel gradient magnitude of a [0, 1] channel,
# where a sharp step of height h scores about 2.6 h. High enough that the soft
# intensity ripples inside upsampled 8x8 digit strokes give no edges (only the
# stroke outlines remain); every shapes colour differs from the background by
# >= 0.85 in some channel, far above them.
CANNY_LOW_THRESHOLD = 0.5
CANNY_HIGH_THRESHOLD = 1.0
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def sketch_from_image(image: Tensor) -> Tensor:
    """Edge map in {0, 1} of an image in [-1, 1]: (C,H,W) -> (1,H,W), (B,C,H,W) -> (B,1,H,W)."""
    if image.dim() == 3:
        return sketch_from_image(image[None])[0]
    if image.dim() != 4:
        raise ValueError(f"expected an image (C,H,W) or a batch (B,C,H,W), got shape {tuple(image.shape)}")
    channels = ((image.detach().cpu().double() + 1) / 2).numpy()
    edges = np.zeros((image.shape[0], 1, *image.shape[2:]), dtype=bool)
    for index, picture in enumerate(channels):
        for channel in picture:
            edges[index, 0] |= canny(
                channel,
                sigma=CANNY_SIGMA,
                low_threshold=CANNY_LOW_THRESHOLD,
                high_threshold=CANNY_HIGH_THRESHOLD,
                mode="nearest",  # a bright image must not get an edge along its border
            )
    return torch.from_numpy(edges).to(torch.float32)


def build_sketch_dataset(
    images_dir: str | Path,
    out_dir: str | Path,
    caption: str | Callable[[Path], str] = "",
    resolution: int | None = None,
) -> Path:
    """Write OUT_DIR/{source,target}/NNNNN.png and prompt.json from a folder of images.

    Files whose suffix is not an image suffix are ignored. With ``resolution``
    each image is centre-cropped to a square and resized; without it, sizes are
    kept. ``caption`` is one prompt for all images or a function of the image path.
    """
    images_dir, out_dir = Path(images_dir), Path(out_dir)
    if resolution is not None and resolution < 1:
        raise ValueError(f"resolution must be positive, got {resolution}")
    if not images_dir.is_dir():
        raise DatasetError(f"image folder {images_dir} does not exist")
    image_paths = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not image_paths:
        raise DatasetError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {images_dir}")
    prompt_file = out_dir / "prompt.json"
    if prompt_file.exists():
        raise DatasetError(f"{prompt_file} already exists; refusing to overwrite a dataset")
    (out_dir / "source").mkdir(parents=True, exist_ok=True)
    (out_dir / "target").mkdir(parents=True, exist_ok=True)

    entries = []
    for index, image_path in enumerate(image_paths):
        image = read_image(image_path, "RGB")
        if resolution is not None:
            image = ImageOps.fit(image, (resolution, resolution), Image.Resampling.BILINEAR)
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)
        sketch = sketch_from_image(pixels * 2 - 1)[0].numpy()
        source, target = f"source/{index:05d}.png", f"target/{index:05d}.png"
        Image.fromarray((sketch * 255).astype(np.uint8)).save(out_dir / source)
        image.save(out_dir / target)
        prompt = caption(image_path) if callable(caption) else caption
        entries.append({"source": source, "target": target, "prompt": prompt})
    prompt_file.write_text("".join(json.dumps(entry) + "\n" for entry in entries), encoding="utf-8")
    return out_dir
