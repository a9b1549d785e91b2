"""Sampling the frozen base: the denoising loop every sampler of the package runs.

Runs are reproducible: the initial noise and every stochastic step draw from one seeded CPU
generator. Any diffusers scheduler built from the base's training schedule drives the loop
(`SCHEDULERS` names the tested ones); DDIM with η = 0 is the default. Steering needs no change
here: `steering.steer` hooks every UNet call made inside its context, so
`sampling.steered_sample_images` is this loop inside that context.
"""

from __future__ import annotations

import inspect

import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler, SchedulerMixin
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from ..utils.grids import image_grid
from ..utils.images import to_unit
from .frozen import FrozenBase

# Classifier-free guidance 3, for base and steered samples alike: without it the embedded
# bases draw colours and classes loosely (see their model cards for the measured gain).
DEFAULT_GUIDANCE_SCALE = 3.0
SCHEDULERS = {"ddim": DDIMScheduler, "dpm++": DPMSolverMultistepScheduler, "euler": EulerDiscreteScheduler}


def start_noise(base: FrozenBase, count: int, generator: torch.Generator) -> torch.Tensor:
    """x_T for `count` samples, standard normal in model space, drawn on the CPU."""
    config = base.unet.config
    return torch.randn((count, config.in_channels, config.sample_size, config.sample_size), generator=generator)


def sample_images(
    base: FrozenBase, captions: list[str], *, steps: int = 50, guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
    seed: int = 0, eta: float = 0.0, progress: bool = True, noise: torch.Tensor | None = None,
    scheduler: str | SchedulerMixin = "ddim",
) -> torch.Tensor:
    """One image in [-1, 1] per caption, with classifier-free guidance when `guidance_scale != 1`.

    `scheduler` is a name of `SCHEDULERS` (built from the base's training schedule) or any
    diffusers scheduler instance (a fresh copy of it runs, so its state is never shared).
    `noise` (one x_T per caption, from `start_noise`) replaces the seeded initial noise, so
    callers can start several samples from the same x_T. `eta` is DDIM's; schedulers without
    it ignore it. The loop runs in inference mode (no autograd bookkeeping at all); the images
    returned are ordinary tensors."""
    if isinstance(scheduler, str):
        if scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {scheduler!r}; choose one of {', '.join(SCHEDULERS)}")
        scheduler = SCHEDULERS[scheduler].from_config(base.scheduler.config)
    else:
        scheduler = type(scheduler).from_config(scheduler.config)
    with torch.inference_mode():
        images = _denoise(base, captions, scheduler, steps=steps, guidance_scale=guidance_scale, seed=seed,
                          eta=eta, progress=progress, noise=noise)
    return images.clone()  # an ordinary tensor: inference tensors refuse later in-place use


def _denoise(base: FrozenBase, captions: list[str], scheduler, *, steps: int, guidance_scale: float,
             seed: int, eta: float, progress: bool, noise: torch.Tensor | None) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    scheduler.set_timesteps(steps)
    noise = start_noise(base, len(captions), generator) if noise is None else noise
    if len(noise) != len(captions):
        raise ValueError(f"{len(noise)} initial noises for {len(captions)} captions")
    sample = noise.to(base.device) * scheduler.init_noise_sigma
    accepted = inspect.signature(scheduler.step).parameters
    step_options = {key: value for key, value in {"eta": eta, "generator": generator}.items() if key in accepted}

    # 1. caption states, once for the loop; the empty caption is the unconditional branch of guidance
    guided = guidance_scale != 1.0
    states = base.encode_captions(([""] * len(captions) if guided else []) + list(captions))
    # 2. denoise from pure noise, one scheduler step per timestep
    for t in tqdm(scheduler.timesteps, desc="sampling", disable=not progress, leave=False):
        model_input = scheduler.scale_model_input(torch.cat([sample, sample]) if guided else sample, t)
        predicted = base.predict_noise(model_input, t, states)
        if guided:
            unconditional, conditional = predicted.chunk(2)
            predicted = unconditional + guidance_scale * (conditional - unconditional)
        sample = scheduler.step(predicted, t, sample, **step_options).prev_sample
    # 3. back to image space
    return base.decode_samples(sample)


def caption_grid(base: FrozenBase, captions: list[str], per_caption: int, *, steps: int,
                 guidance_scale: float, seed: int, scheduler: str = "ddim") -> Figure:
    """`per_caption` samples for each caption, one labelled row per caption."""
    repeated = [caption for caption in captions for _ in range(per_caption)]
    images = sample_images(base, repeated, steps=steps, guidance_scale=guidance_scale, seed=seed,
                           scheduler=scheduler)
    return image_grid(list(to_unit(images).split(per_caption)), row_labels=captions)
