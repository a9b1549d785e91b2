"""Per-image agreement between what the domain classifier sees and what the caption says.

For digits this is class agreement: the predicted digit against the caption's. For shapes it is
an exact match of the set of (colour, shape) labels, so a layout or segmentation sample with
the right boxes but a wrong colour scores 0. `classifier.caption_agreement` aggregates the same
comparison with a chance level; this gives the per-image scores that intervals need.
"""

from __future__ import annotations

import torch

from ..base.classifier import DomainClassifier


def label_agreement(classifier: DomainClassifier, images: torch.Tensor, captions: list[str]) -> torch.Tensor:
    """1 where the classifier's labels for an image in [-1, 1] equal its caption's, else 0 `(B,)`."""
    if len(images) != len(captions):
        raise ValueError(f"{len(images)} images but {len(captions)} captions")
    predictions = classifier.predict(images.to(classifier.device)).cpu()
    matches = predictions == classifier.caption_targets(captions)
    return (matches.all(dim=1) if classifier.config.multi_label else matches).float()
