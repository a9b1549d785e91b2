"""`BPSBasePipeline`: an embedded base as diffusers loads and calls a text-to-image pipeline.

    pipe = BPSBasePipeline.from_pretrained(resolve_base("shapes"))    # the folder's model_index.json names it
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)  # the folder holds the training DDPM
    images = pipe(["a red circle"], num_inference_steps=50, generator=torch.Generator().manual_seed(0)).images

Its components are the folder's: the UNet, the training schedule (DDPM; like any diffusers
pipeline it samples with the scheduler it holds), the caption encoder and, for the embedded
bases, the domain classifier.
"""

from __future__ import annotations

import torch
from diffusers import DDPMScheduler, DiffusionPipeline, ImagePipelineOutput

from ..base import DEFAULT_GUIDANCE_SCALE, FrozenBase, sample_images
from ..utils.images import to_unit
from .outputs import as_output, seed_from


class BPSBasePipeline(DiffusionPipeline):
    _optional_components = ["classifier", "tokenizer", "vae"]

    def __init__(self, unet, scheduler, text_encoder, classifier=None, tokenizer=None, vae=None):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler, text_encoder=text_encoder, classifier=classifier,
                              tokenizer=tokenizer, vae=vae)

    def frozen_base(self) -> FrozenBase:
        return FrozenBase(self.unet, DDPMScheduler.from_config(self.scheduler.config), self.text_encoder,
                          tokenizer=self.tokenizer, vae=self.vae, classifier=self.classifier)

    @torch.no_grad()
    def __call__(self, prompt: str | list[str], num_inference_steps: int = 50,
                 guidance_scale: float = DEFAULT_GUIDANCE_SCALE, generator: torch.Generator | None = None,
                 output_type: str = "pil", progress: bool = True) -> ImagePipelineOutput:
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        images = sample_images(self.frozen_base(), prompts, steps=num_inference_steps, guidance_scale=guidance_scale,
                               seed=seed_from(generator), scheduler=self.scheduler, progress=progress)
        return ImagePipelineOutput(images=as_output(to_unit(images).cpu(), output_type))
