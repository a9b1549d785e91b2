"""Pretrain a base from scratch and save it in diffusers layout, with its classifier and card.

The base is the "large probability space" of BPS, trained on ε-MSE with caption dropout (so
classifier-free guidance works) and an EMA of the weights. For a built-in domain the run also
trains the domain classifier, measures how often generated samples show what their caption
says, and writes a model card. `options.json` records the resolved options.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel

from ...data import DOMAINS
from ...utils import options as option_files
from ...utils.plots import plot_loss_curve
from ..caption_encoder import CaptionEncoder, vocabulary_from
from ..classifier import DomainClassifier, train_classifier
from .card import write_model_card
from .denoiser import build_scheduler, build_unet
from .evaluation import domain_dataset, evaluate_base
from .loop import train_denoiser
from .options import PretrainOptions


def _model_index(domain: str, classifier: bool) -> dict:
    # the modules as diffusers writes custom components, so `BPSBasePipeline.from_pretrained` loads it
    index = {"_class_name": "BPSBasePipeline", "_bayes_bps_domain": domain,
             "unet": ["diffusers", "UNet2DConditionModel"],
             "scheduler": ["diffusers", "DDPMScheduler"],
             "text_encoder": ["bayes_bps.base.caption_encoder", "CaptionEncoder"]}
    if classifier:
        index["classifier"] = ["bayes_bps.base.classifier", "DomainClassifier"]
    return index


def pretrain(options: PretrainOptions, argv: list[str] | None = None) -> Path:
    """Train, save in diffusers layout, and (built-in domains) evaluate and write the card.

    `argv`, the command line that asked for this run, is recorded in the card's stage table."""
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    option_files.write(options, out / "options.json")
    torch.manual_seed(options.seed)
    domain = DOMAINS[options.domain_name]
    dataset = domain_dataset(options, "train", options.train_scenes if domain.name == "shapes" else None)
    channels = dataset.image_channels

    # 1. the denoiser and its caption encoder: new, or an earlier stage's to train further
    stages = []
    if options.init_from is None:
        unet = build_unet(options.unet_preset, options.resolution, channels, options.caption_dim)
        text_encoder = CaptionEncoder(vocabulary_from(dataset.captions()), hidden_size=options.caption_dim)
    else:
        earlier = Path(options.init_from)
        unet = UNet2DConditionModel.from_pretrained(earlier / "unet")
        text_encoder = CaptionEncoder.from_pretrained(earlier / "text_encoder")
        stages = json.loads((earlier / "pretrain_stats.json").read_text())["stages"]
        if (unet.config.sample_size, unet.config.in_channels) != (options.resolution, channels):
            raise ValueError(f"{earlier} draws {unet.config.in_channels} x {unet.config.sample_size}^2 "
                             f"images; this dataset has {channels} x {options.resolution}^2")
    scheduler = build_scheduler()
    started = time.perf_counter()
    losses = train_denoiser(options, dataset, unet, text_encoder, scheduler)
    wall = time.perf_counter() - started

    # 2. save in diffusers layout, so FrozenBase loads it like a Stable Diffusion folder
    unet.save_pretrained(out / "unet")
    text_encoder.save_pretrained(out / "text_encoder")
    scheduler.save_pretrained(out / "scheduler")
    stages.append({"argv": list(argv or []), "steps": options.steps, "batch_size": options.batch_size,
                   "wall_seconds": wall,
                   "machine": f"{torch.get_num_threads()} CPU threads, {platform.machine()}"})
    stats = {"stages": stages,
             "unet_parameters": sum(p.numel() for p in unet.parameters()),
             "caption_parameters": sum(p.numel() for p in text_encoder.parameters()),
             "image_channels": channels, "final_loss": sum(losses[-100:]) / len(losses[-100:])}

    # 3. built-in domains: the domain classifier, then the caption-agreement check
    if domain.caption_labels is not None:
        classifier = DomainClassifier.for_domain(domain.name, channels)
        train_classifier(classifier, dataset, options.classifier_steps, seed=options.seed)
        classifier.save_pretrained(out / "classifier")
        stats["classifier_steps"] = options.classifier_steps
    (out / "model_index.json").write_text(
        json.dumps(_model_index(domain.name, domain.caption_labels is not None), indent=2) + "\n")
    if domain.caption_labels is not None:
        stats["evaluation"] = evaluate_base(out, options)

    weighting = f"Min-SNR-{options.min_snr_gamma:g} weighted " if options.min_snr_gamma > 0 else ""
    plot_loss_curve(losses, out / "loss.png", ylabel=f"{weighting}ε-MSE", title="pretraining loss")
    (out / "pretrain_stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    write_model_card(out, options, stats)
    return out
