"""`BPSPipeline`: a fitted steering, loaded and called the way diffusers' adapter pipelines are.

    pipe = BPSPipeline.from_pretrained("exported/")            # written by `python -m bayes_bps.export`
    out = pipe("a red circle", image=sketch, num_posterior_draws=8, generator=torch.Generator().manual_seed(0))
    out.images, out.mean, out.sd                                # K draws per condition, their mean and sd
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)   # any scheduler

The folder holds the frozen base's components (unet, scheduler, text_encoder, and tokenizer
and vae for a Stable Diffusion base), the adapter (`BPSAdapter`) and the posterior
(`SteeringPosterior`, safetensors): nothing of the training data. Each condition's K images
start from one initial noise, so their spread is the coefficients' uncertainty alone;
`posterior="mean"` steers with the posterior-mean coefficients instead (one image each).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from diffusers import DDPMScheduler, DiffusionPipeline
from diffusers.utils import BaseOutput
from torch import Tensor

from ..base import DEFAULT_GUIDANCE_SCALE, FrozenBase, sample_images, start_noise
from ..steering import steer
from ..utils.images import to_unit
from .outputs import as_output, seed_from

POSTERIOR_MODES = ("draws", "mean")


@dataclass
class BPSPipelineOutput(BaseOutput):
    """`images`: K per condition, condition-major (PIL images, or a (B·K, C, H, W) tensor in
    [0, 1]); `mean` and `sd`: per-pixel mean and sd over each condition's K images (B, C, H, W),
    None with one image per condition."""

    images: list[PIL.Image.Image] | Tensor
    mean: Tensor | None
    sd: Tensor | None


class BPSPipeline(DiffusionPipeline):
    _optional_components = ["tokenizer", "vae"]  # Stable Diffusion bases only

    def __init__(self, unet, scheduler, text_encoder, adapter, posterior, tokenizer=None, vae=None):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler, text_encoder=text_encoder, adapter=adapter,
                              posterior=posterior, tokenizer=tokenizer, vae=vae)

    def frozen_base(self) -> FrozenBase:
        """The package's view of the base components (the training schedule adds noise)."""
        return FrozenBase(self.unet, DDPMScheduler.from_config(self.scheduler.config), self.text_encoder,
                          tokenizer=self.tokenizer, vae=self.vae)

    def _conditions(self, image, count: int) -> Tensor:
        """(B, Cc, H, W) in [0, 1] from a tensor or PIL image(s); one condition is repeated to B."""
        channels = self.adapter.config.condition_channels
        images = image if isinstance(image, (list, tuple)) else [image]
        if isinstance(image, Tensor):
            conditions = image[None] if image.ndim == 3 else image
        else:
            mode = {1: "L", 3: "RGB"}[channels]
            conditions = torch.stack([torch.from_numpy(np.asarray(im.convert(mode), dtype=np.float32) / 255)
                                      .reshape(im.height, im.width, channels).permute(2, 0, 1) for im in images])
        if conditions.shape[1] != channels:
            raise ValueError(f"the adapter takes {channels}-channel conditions, got {conditions.shape[1]}")
        if len(conditions) == 1 and count > 1:
            conditions = conditions.expand(count, -1, -1, -1)
        if len(conditions) != count:
            raise ValueError(f"{len(conditions)} conditions for {count} prompts: give one, or one per prompt")
        return conditions.float()

    @torch.no_grad()
    def __call__(self, prompt: str | list[str], image, num_posterior_draws: int = 8, posterior: str = "draws",
                 generator: torch.Generator | None = None, num_inference_steps: int = 50,
                 guidance_scale: float = DEFAULT_GUIDANCE_SCALE, conditioning_scale: float = 1.0,
                 output_type: str = "pil", progress: bool = True) -> BPSPipelineOutput:
        if posterior not in POSTERIOR_MODES:
            raise ValueError(f"posterior must be one of {', '.join(POSTERIOR_MODES)}, got {posterior!r}")
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        conditions = self._conditions(image, len(prompts))
        base, batch = self.frozen_base(), len(prompts)
        # 1. one seed from the caller's generator: the initial noise, the coefficient draws and any
        #    stochastic scheduler step follow from it
        seed = seed_from(generator)
        draw_generator = torch.Generator().manual_seed(seed + 1)
        if not self.posterior.config.bayesian:
            coefficients, draws = None, 1
        elif posterior == "mean":
            coefficients, draws = self.posterior.mean(), 1
        else:
            coefficients, draws = self.posterior.draws(num_posterior_draws, draw_generator), num_posterior_draws
        # 2. the K·B images (draw-major) from each condition's one x_T, steered in one loop
        noise = start_noise(base, batch, torch.Generator().manual_seed(seed)).repeat(draws, 1, 1, 1)
        weights = self.posterior.port_weights(coefficients, batch)
        with steer(self.unet, self.adapter, conditions.to(self.device), weights, conditioning_scale):
            samples = sample_images(base, prompts * draws, steps=num_inference_steps, guidance_scale=guidance_scale,
                                    seed=seed, noise=noise, scheduler=self.scheduler, progress=progress)
        samples = to_unit(samples).unflatten(0, (draws, batch)).transpose(0, 1)  # (B, K, C, H, W)
        mean, sd = (samples.mean(dim=1), samples.std(dim=1)) if draws > 1 else (None, None)
        return BPSPipelineOutput(images=as_output(samples.flatten(0, 1).cpu(), output_type), mean=mean, sd=sd)
