"""pytorch-fid's InceptionV3 pool features, from a local weights file.

FID is only comparable with published numbers when it uses the exact network of the TensorFlow
FID code, which pytorch-fid ports: torchvision's Inception v3 with 1008 classes and patched
blocks, and its own weights file. pytorch-fid builds that network only by downloading the
weights, and there is no internet here. `load_fid_inception` lets pytorch-fid build it all the
same, handing it the state dict of a local file where it would download, so the architecture
and the feature path (resize to 299×299, blocks up to the 2048-d average pool) stay pytorch-fid's
own. Nothing here downloads.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from unittest import mock

import numpy as np
import pytorch_fid.inception
import torch
from pytorch_fid.inception import FID_WEIGHTS_URL, InceptionV3

WEIGHTS_FILE = FID_WEIGHTS_URL.rsplit("/", 1)[-1]  # pt_inception-2015-12-05-6726825d.pth
POOL_BLOCK = InceptionV3.BLOCK_INDEX_BY_DIM[2048]


def find_inception_weights(path: str | Path | None = None) -> Path | None:
    """The FID Inception weights file: `path` if given (it must exist), else pytorch-fid's file
    in the torch hub cache (`torch.hub.get_dir()/checkpoints`, where pytorch-fid itself would put
    it) if it is there, else None."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Inception weights file {path} not found (pytorch-fid's is "
                                    f"{WEIGHTS_FILE}, from {FID_WEIGHTS_URL})")
        return path
    cached = Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE
    return cached if cached.is_file() else None


def load_fid_inception(path: str | Path) -> InceptionV3:
    """pytorch-fid's `InceptionV3` returning the 2048-d pool features, weights read from `path`.

    It takes images in [-1, 1] (`normalize_input=False`) and resizes them to 299×299 itself.
    """
    path = find_inception_weights(path)
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"cannot read Inception weights file {path}: {type(error).__name__}: {error}") from error
    # 1. pytorch-fid's fid_inception_v3() builds the network, then loads what its download returns
    with mock.patch.object(pytorch_fid.inception, "load_state_dict_from_url", return_value=state_dict):
        try:
            network = InceptionV3([POOL_BLOCK], resize_input=True, normalize_input=False)
        except (RuntimeError, TypeError, AttributeError) as error:
            summary = " ".join(str(error).split())[:300]
            raise ValueError(f"{path} is not a state dict of pytorch-fid's FID Inception network "
                             f"(expected {WEIGHTS_FILE}): {summary}") from error
    # 2. frozen evaluation mode: batch norm uses its running statistics
    return network.eval().requires_grad_(False)


def inception_features(weights_path: str | Path, device: str | torch.device = "cpu",
                       batch_size: int = 50) -> Callable[[torch.Tensor], np.ndarray]:
    """An extractor: images `(B, C, H, W)` in [-1, 1] -> pool features `(B, 2048)` float64.

    Grey images (C = 1) are repeated to three channels, as FIDs of digit datasets usually are.
    """
    network = load_fid_inception(weights_path).to(device)

    @torch.no_grad()
    def extract(images: torch.Tensor) -> np.ndarray:
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"Inception features need images (B, 1 or 3, H, W), got {tuple(images.shape)}")
        chunks = [network(batch.to(device).expand(-1, 3, -1, -1))[0].flatten(1).cpu()
                  for batch in images.split(batch_size)]
        return torch.cat(chunks).double().numpy()

    return extract
