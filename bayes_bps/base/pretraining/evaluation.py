"""Does a pretrained base draw what its captions say? Caption agreement of its samples."""

from __future__ import annotations

from pathlib import Path

import torch

from ...data import make_dataset, parse_domain
from ...utils.grids import save_png
from ..classifier import caption_agreement
from ..frozen import FrozenBase
from ..sampler import caption_grid, sample_images
from .options import PretrainOptions


def domain_dataset(options: PretrainOptions, split: str, length: int | None):
    """The base's training data (or a held-out split), in the domain's first task."""
    task = parse_domain(options.domain)[0].tasks[0]
    return make_dataset(options.domain, task, split=split, length=length, seed=options.seed,
                        resolution=options.resolution)


def evaluate_base(out: Path, options: PretrainOptions) -> dict:
    """Caption agreement of the shipped classifier on generated samples, at the options' guidance
    and without guidance (the same noise), against chance; and a grid of samples. The captions
    come from the validation split: the test split stays unseen until the study scores it."""
    base = FrozenBase.from_pretrained(out)
    validation = domain_dataset(options, "validation", None)
    count = min(options.eval_samples, len(validation))
    captions = [validation[i][2] for i in range(count)]
    real = torch.stack([validation[i][0] for i in range(count)])
    save_png(caption_grid(base, captions[:6], 6, steps=options.eval_ddim_steps,
                          guidance_scale=options.guidance_scale, seed=options.seed), out / "samples.png")
    evaluation = {}
    for name, scale in (("generated", options.guidance_scale), ("generated_unguided", 1.0)):
        generated = sample_images(base, captions, steps=options.eval_ddim_steps, guidance_scale=scale,
                                seed=options.seed)
        evaluation[name] = caption_agreement(base.classifier, generated, captions, seed=options.seed)
        evaluation[name]["guidance_scale"] = scale
    evaluation["real_validation"] = caption_agreement(base.classifier, real, captions, seed=options.seed)
    return evaluation
