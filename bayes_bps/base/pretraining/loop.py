"""The pretraining loop: ε-MSE with caption dropout, Min-SNR-γ weights and an EMA of the weights."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .denoiser import min_snr_weights
from .options import PretrainOptions


def learning_rate_factor(step: int, options: PretrainOptions) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < options.warmup_steps:
        return (step + 1) / options.warmup_steps
    progress = (step - options.warmup_steps) / max(1, options.steps - options.warmup_steps)
    return 0.1 + 0.45 * (1 + math.cos(math.pi * progress))


def train_denoiser(options: PretrainOptions, dataset: Dataset, unet, text_encoder, scheduler) -> list[float]:
    """ε-MSE training; leaves the EMA weights in `unet` and `text_encoder`."""
    generator = torch.Generator().manual_seed(options.seed)
    loader = DataLoader(dataset, batch_size=options.batch_size, shuffle=True,
                        generator=generator, drop_last=True)
    parameters = [*unet.parameters(), *text_encoder.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=options.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate_factor(step, options))
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
                if options.min_snr_gamma > 0:
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
