"""Pretrain an embedded base from scratch: `python -m bayes_bps.pretrain`.

    python -m bayes_bps.pretrain --domain shapes --out bayes_bps/bases/shapes
    python -m bayes_bps.pretrain --domain digits --out bayes_bps/bases/digits
    python -m bayes_bps.pretrain --data folder:PATH --resolution 64 --out my_base

The base is the "large probability space" of BPS: a small pixel-space UNet2DConditionModel
(the class Stable Diffusion uses) with a word-level caption encoder feeding cross-attention,
trained on ε-MSE with caption dropout (so classifier-free guidance works) and an EMA of the
weights. For built-in domains it also trains the domain classifier, measures how often
generated samples show what their caption says, and writes a model card.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DConditionModel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .caption_encoder import CaptionEncoder, vocabulary_from
from .classifier import (
    DomainClassifier,
    caption_agreement,
    labels_for_domain,
    train_classifier,
)
from .data import DOMAIN_TASKS, make_dataset
from .plots import plot_loss_curve
from .prior import FrozenPrior
from .sample import DEFAULT_GUIDANCE_SCALE, ddim_sample, sample_grid

_DOWN, _CROSS_DOWN = "DownBlock2D", "CrossAttnDownBlock2D"
_UP, _CROSS_UP = "UpBlock2D", "CrossAttnUpBlock2D"

# Attention only at the two lowest resolutions: on 2 CPU cores, self-attention over 32x32
# tokens would triple the step time for little gain on these simple domains.
BASE_UNET_PRESETS = {
    "small": dict(block_out_channels=(32, 48, 64, 64), layers_per_block=1,
                  down_block_types=(_DOWN, _DOWN, _CROSS_DOWN, _CROSS_DOWN),
                  up_block_types=(_CROSS_UP, _CROSS_UP, _UP, _UP),
                  attention_head_dim=8, norm_num_groups=16),
    "tiny": dict(block_out_channels=(16, 32), layers_per_block=1,
                 down_block_types=(_DOWN, _CROSS_DOWN), up_block_types=(_CROSS_UP, _UP),
                 attention_head_dim=4, norm_num_groups=8),
}
BUILT_IN_DOMAINS = ("shapes", "digits")


@dataclass
class PretrainOptions:
    out: Path
    domain: str = "shapes"  # "shapes", "digits" or "folder:PATH"
    resolution: int = 32
    unet_preset: str = "small"
    caption_dim: int = 64
    steps: int = 4000
    batch_size: int = 32
    lr: float = 1e-3
    warmup_steps: int = 200
    ema_decay: float = 0.999
    min_snr_gamma: float | None = 5.0  # Min-SNR-γ loss weighting; None trains on plain ε-MSE
    caption_dropout: float = 0.1
    train_scenes: int = 20000  # pool size for the unlimited shapes domain
    classifier_steps: int = 800
    eval_samples: int = 200
    eval_ddim_steps: int = 50
    guidance_scale: float = DEFAULT_GUIDANCE_SCALE
    seed: int = 0
    init_from: Path | None = None  # continue training an earlier base (a later stage)


def build_unet(options: PretrainOptions, channels: int) -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=options.resolution, in_channels=channels, out_channels=channels,
        cross_attention_dim=options.caption_dim, **BASE_UNET_PRESETS[options.unet_preset],
    )


def build_scheduler() -> DDPMScheduler:
    # The cosine schedule suits small pixel-space images. The predicted x_0 is not clipped to
    # [-1, 1] at each DDIM step: on the first bases, clipping made classifier-free guidance
    # lower caption agreement (digits 0.90 -> 0.68 at guidance 3) instead of raising it.
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                         prediction_type="epsilon", clip_sample=False)


def min_snr_weights(scheduler: DDPMScheduler, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
    """Min-SNR-γ weights for ε-prediction, min(SNR, γ) / SNR (Hang et al., 2023).

    They stop the many low-noise timesteps, which teach little about content, from
    dominating the gradient, so the base learns what captions mean in fewer steps.
    """
    alphas_cumprod = scheduler.alphas_cumprod[timesteps]
    snr = alphas_cumprod / (1 - alphas_cumprod)
    return snr.clamp(max=gamma) / snr


def _learning_rate_factor(step: int, options: PretrainOptions) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < options.warmup_steps:
        return (step + 1) / options.warmup_steps
    progress = (step - options.warmup_steps) / max(1, options.steps - options.warmup_steps)
    return 0.1 + 0.45 * (1 + math.cos(math.pi * progress))


def train_denoiser(options: PretrainOptions, dataset, unet, text_encoder, scheduler) -> list[float]:
    """ε-MSE training; leaves the EMA weights in `unet` and `text_encoder`."""
    generator = torch.Generator().manual_seed(options.seed)
    loader = DataLoader(dataset, batch_size=options.batch_size, shuffle=True,
                        generator=generator, drop_last=True)
    parameters = [*unet.parameters(), *text_encoder.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=options.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _learning_rate_factor(step, options))
    ema_parameters = [p.detach().clone() for p in parameters]
    losses: list[float] = []
    with tqdm(total=options.steps, desc=f"pretrain {options.domain}") as progress:
        while len(losses) < options.steps:
            for images, _, captions in loader:
                # 1. drop captions so the same model is also the unconditional prior
                keep = torch.rand(len(captions), generator=generator) >= options.caption_dropout
                captions = [c if k else "" for c, k in zip(captions, keep)]
                # 2. noise the images at uniform random timesteps
                noise = torch.randn(images.shape, generator=generator)
                timesteps = torch.randint(0, scheduler.config.num_train_timesteps,
                                          (len(images),), generator=generator)
                noisy = scheduler.add_noise(images, noise, timesteps)
                # 3. ε-MSE, per image weighted by Min-SNR-γ
                predicted = unet(noisy, timesteps, encoder_hidden_states=text_encoder(captions)).sample
                per_image = F.mse_loss(predicted, noise, reduction="none").flatten(1).mean(1)
                if options.min_snr_gamma is not None:
                    per_image = per_image * min_snr_weights(scheduler, timesteps, options.min_snr_gamma)
                loss = per_image.mean()
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"non-finite pretraining loss at step {len(losses)}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(parameters, 1.0)
                optimizer.step()
                schedule.step()
                # 4. EMA, with a short warm-up so early weights fade quickly
                decay = min(options.ema_decay, (1 + len(losses)) / (10 + len(losses)))
                torch._foreach_lerp_(ema_parameters, [p.detach() for p in parameters], 1 - decay)
                losses.append(loss.item())
                progress.update()
                progress.set_postfix(loss=f"{loss.item():.4f}")
                if len(losses) == options.steps:
                    break
    with torch.no_grad():
        for parameter, average in zip(parameters, ema_parameters):
            parameter.copy_(average)
    return losses


def _domain_dataset(options: PretrainOptions, split: str, length: int | None):
    domain = options.domain.split(":", 1)[0]
    return make_dataset(options.domain, DOMAIN_TASKS[domain][0], split=split, length=length,
                        seed=options.seed, resolution=options.resolution)


def evaluate_base(out: Path, options: PretrainOptions) -> dict:
    """Caption agreement of the shipped classifier on generated samples, against chance."""
    prior = FrozenPrior.from_pretrained(out)
    test = _domain_dataset(options, "test", options.eval_samples)
    captions = [test[i][2] for i in range(len(test))]
    real = torch.stack([test[i][0] for i in range(len(test))])
    sample_grid(prior, captions[:6], 6, out / "samples.png", steps=options.eval_ddim_steps,
                guidance_scale=options.guidance_scale, seed=options.seed)
    evaluation = {}
    for name, scale in (("generated", options.guidance_scale), ("generated_unguided", 1.0)):
        generated = ddim_sample(prior, captions, steps=options.eval_ddim_steps, guidance_scale=scale,
                                seed=options.seed)
        evaluation[name] = caption_agreement(prior.classifier, generated, captions, seed=options.seed)
        evaluation[name]["guidance_scale"] = scale
    evaluation["real_test"] = caption_agreement(prior.classifier, real, captions, seed=options.seed)
    return evaluation


def write_model_card(out: Path, options: PretrainOptions, stats: dict) -> None:
    stages = stats["stages"]
    wall = sum(stage["wall_seconds"] for stage in stages)
    lines = [
        f"# Embedded base: {options.domain}",
        "",
        "A small pixel-space diffusion model (diffusers `UNet2DConditionModel`) with a word-level",
        "caption encoder, pretrained from scratch by bayes_bps. It is the frozen prior that",
        "Bayesian Power Steering adapts.",
        "",
        "| | |", "|---|---|",
        f"| seed | {options.seed} |",
        f"| training steps | {sum(stage['steps'] for stage in stages)} in {len(stages)} stage(s), below |",
        f"| wall time | {wall / 60:.1f} min in all |",
        "| loss | ε-MSE" + (f", Min-SNR-γ weighted (γ = {options.min_snr_gamma:g})" if options.min_snr_gamma else "")
        + f", caption dropout {options.caption_dropout:g}, EMA {options.ema_decay:g} |",
        f"| UNet parameters | {stats['unet_parameters']:,} |",
        f"| caption encoder parameters | {stats['caption_parameters']:,} |",
        f"| image | {stats['image_channels']} × {options.resolution} × {options.resolution}, pixel space, values in [-1, 1] |",
        f"| final loss (mean of last 100 steps) | {stats['final_loss']:.4f} |",
        "",
        "| stage | command | steps × batch | wall time |", "|---|---|---|---|",
        *(f"| {i + 1} | `python -m bayes_bps.pretrain {' '.join(stage['argv'])}` | "
          f"{stage['steps']} × {stage['batch_size']} | {stage['wall_seconds'] / 60:.1f} min "
          f"({stage['wall_seconds'] / stage['steps']:.2f} s/step, {stage['machine']}) |"
          for i, stage in enumerate(stages)),
        "",
        "![loss curve of the last stage](loss.png)",
        "",
    ]
    if "evaluation" in stats:
        evaluation = stats["evaluation"]
        rows = [(f"generated, guidance {evaluation['generated']['guidance_scale']:g} (the default)",
                 evaluation["generated"]),
                ("generated, guidance 1 (none)", evaluation["generated_unguided"]),
                ("real test images (classifier ceiling)", evaluation["real_test"])]
        lines += [
            "## Does it draw what the caption says?",
            "",
            f"The shipped domain classifier (`classifier/`, {stats['classifier_steps']} training steps) "
            f"reads the caption's content back from {evaluation['generated']['n']} samples generated for "
            f"test-split captions (DDIM {options.eval_ddim_steps} steps, the same noise at both guidance scales). "
            "Agreement is the fraction of images whose predicted labels equal the caption's exactly; "
            "label F1 scores the overlap of the predicted and captioned label sets (it equals "
            "agreement for one label per image); chance is each score against shuffled captions.",
            "",
            "| images | agreement | chance | label F1 | chance |", "|---|---|---|---|---|",
            *(f"| {name} | {result['agreement']:.3f} | {result['chance']:.3f} | "
              f"{result['label_f1']:.3f} | {result['label_f1_chance']:.3f} |"
              for name, result in rows),
            "",
            "![samples](samples.png)",
            "",
        ]
    (out / "README.md").write_text("\n".join(lines))


def pretrain(options: PretrainOptions, argv: list[str] | None = None) -> Path:
    """Train, save in diffusers layout, and (built-in domains) evaluate and write the card."""
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(options.seed)
    domain = options.domain.split(":", 1)[0]
    dataset = _domain_dataset(options, "train",
                              options.train_scenes if domain == "shapes" else None)
    channels = dataset.image_channels

    # 1. the denoiser and its caption encoder: new, or an earlier stage's to train further
    stages = []
    if options.init_from is None:
        unet = build_unet(options, channels)
        text_encoder = CaptionEncoder(vocabulary_from(dataset.captions()),
                                      hidden_size=options.caption_dim)
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

    # 2. save in diffusers layout, so FrozenPrior loads it like a Stable Diffusion folder
    unet.save_pretrained(out / "unet")
    text_encoder.save_pretrained(out / "text_encoder")
    scheduler.save_pretrained(out / "scheduler")
    index = {"_class_name": "BPSEmbeddedBase", "_bayes_bps_domain": domain,
             "unet": ["diffusers", "UNet2DConditionModel"],
             "scheduler": ["diffusers", "DDPMScheduler"],
             "text_encoder": ["bayes_bps", "CaptionEncoder"]}
    stages.append({"argv": list(argv or []), "steps": options.steps, "batch_size": options.batch_size,
                   "wall_seconds": wall,
                   "machine": f"{torch.get_num_threads()} CPU threads, {platform.machine()}"})
    stats = {"stages": stages,
             "unet_parameters": sum(p.numel() for p in unet.parameters()),
             "caption_parameters": sum(p.numel() for p in text_encoder.parameters()),
             "image_channels": channels, "final_loss": sum(losses[-100:]) / len(losses[-100:])}

    # 3. built-in domains: the domain classifier, then the caption-agreement check
    if domain in BUILT_IN_DOMAINS:
        labels, multi_label = labels_for_domain(domain)
        classifier = DomainClassifier(channels, labels, multi_label)
        train_classifier(classifier, dataset, options.classifier_steps, seed=options.seed)
        classifier.save_pretrained(out / "classifier")
        index["classifier"] = ["bayes_bps", "DomainClassifier"]
        stats["classifier_steps"] = options.classifier_steps
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    if domain in BUILT_IN_DOMAINS:
        stats["evaluation"] = evaluate_base(out, options)

    weighting = f"Min-SNR-{options.min_snr_gamma:g} weighted " if options.min_snr_gamma else ""
    plot_loss_curve(losses, out / "loss.png", ylabel=f"{weighting}ε-MSE", title="pretraining loss")
    (out / "pretrain_stats.json").write_text(json.dumps(
        {**stats, "options": {k: str(v) if isinstance(v, Path) else v
                              for k, v in asdict(options).items()}}, indent=2) + "\n")
    write_model_card(out, options, stats)
    return out


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    defaults = PretrainOptions(out=Path("."))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--domain", choices=BUILT_IN_DOMAINS, default="shapes")
    source.add_argument("--data", help="a paired folder dataset, as folder:PATH")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the base to")
    parser.add_argument("--resolution", type=int, default=defaults.resolution, help="image side (>= 16)")
    parser.add_argument("--unet-preset", choices=tuple(BASE_UNET_PRESETS), default=defaults.unet_preset)
    parser.add_argument("--steps", type=int, default=defaults.steps, help="training steps (>= 1)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr, help="peak AdamW learning rate")
    parser.add_argument("--min-snr-gamma", type=float, default=defaults.min_snr_gamma,
                        help="Min-SNR-γ loss weighting (0: plain ε-MSE)")
    parser.add_argument("--classifier-steps", type=int, default=defaults.classifier_steps)
    parser.add_argument("--eval-samples", type=int, default=defaults.eval_samples,
                        help="generated samples for the caption-agreement check")
    parser.add_argument("--eval-ddim-steps", type=int, default=defaults.eval_ddim_steps)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--init-from", type=Path, help="an earlier base to continue training")
    args = parser.parse_args(argv)
    if args.data is not None and not args.data.startswith("folder:"):
        parser.error(f"--data must look like folder:PATH, got {args.data!r}")
    if args.resolution < 16 or args.steps < 1:
        parser.error("--resolution must be >= 16 and --steps >= 1")
    options = PretrainOptions(
        out=args.out, domain=args.data or args.domain, resolution=args.resolution,
        unet_preset=args.unet_preset, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        min_snr_gamma=args.min_snr_gamma or None,
        classifier_steps=args.classifier_steps, eval_samples=args.eval_samples,
        eval_ddim_steps=args.eval_ddim_steps, seed=args.seed, init_from=args.init_from)
    print(f"wrote {pretrain(options, argv)}")


if __name__ == "__main__":
    main()
