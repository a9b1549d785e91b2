"""The posterior predictive of a fitted run: K posterior draws of the steering per condition.

`posterior_predictive` samples each condition under K draws of the fusion
coefficients, all from the condition's one initial noise, so the spread across draws is the
coefficients' uncertainty alone; `one_draw_per_image` gives each image its own draw, so its
samples are draws from the posterior predictive.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..base import DEFAULT_GUIDANCE_SCALE, sample_images, start_noise
from ..bayes import HEAD_SITE, BayesianSteering, ELBOObjective, posterior_draws
from ..training import FittedRun
from ..utils.seeding import seeded
from .steered import steered_sample_images


def coefficient_draws(run: FittedRun, num_draws: int, seed: int) -> dict[str, torch.Tensor]:
    """`num_draws` joint draws from the run's guide, from `seed` (the caller's RNG state is kept)."""
    with seeded(seed):
        return posterior_draws(run.objective.guide, num_draws)


@torch.no_grad()
def steered_draws(model: BayesianSteering, draws: Mapping[str, torch.Tensor], conditions: torch.Tensor,
                  captions: list[str], *, seed: int = 0, noise: torch.Tensor | None = None,
                  **sampling) -> torch.Tensor:
    """(K, B, C, H, W): each of the B conditions steered by each of the K coefficient draws.

    Every draw of condition j starts from the same x_T (the one `sample_images` draws from
    `seed` for B captions), so the spread across draws is the coefficients' uncertainty alone;
    `noise`, (K·B, C, H, W) from `start_noise`, gives image k·B + j its own x_T instead.
    The K draws run as one DDIM loop over K·B images, each image with its draw's port weights.
    Bayesian port heads are adapter weights, which one adapter call cannot vary per image: then
    each draw gets its own loop of B images (same work, less parallelism)."""
    num_draws, batch = len(draws["fusion"]), len(captions)
    if noise is None:
        noise = start_noise(model.base, batch, torch.Generator().manual_seed(seed)).repeat(num_draws, 1, 1, 1)
    if len(noise) != num_draws * batch:
        raise ValueError(f"noise has {len(noise)} x_T for {num_draws} draws of {batch} conditions")
    if any(site.startswith(HEAD_SITE) for site in draws):
        one_by_one = ({site: value[k] for site, value in draws.items()} for k in range(num_draws))
        return torch.stack([
            steered_sample_images(model.base, model.adapter_with_heads(draw), model.weights_for(draw), conditions,
                                captions, seed=seed, noise=noise[k * batch:(k + 1) * batch], **sampling)
            for k, draw in enumerate(one_by_one)])
    # the conditions once: `steer` tiles them to the K·B images and runs the adapter once per step
    images = steered_sample_images(model.base, model.adapter, model.weights_per_image(draws, batch), conditions,
                                 list(captions) * num_draws, seed=seed, noise=noise, **sampling)
    return images.unflatten(0, (num_draws, batch))


@torch.no_grad()
def one_draw_per_image(objective: ELBOObjective, conditions: torch.Tensor, captions: list[str], *,
                       seed: int = 0, **sampling) -> torch.Tensor:
    """Posterior-predictive samples in [-1, 1], image j steered by its own coefficient draw.

    The draws come from `seed` (the caller's RNG state is kept), as does the noise."""
    base = objective.model.base
    with seeded(seed), objective.steering(conditions.to(base.device)):
        return sample_images(base, captions, seed=seed, **sampling)


def posterior_predictive(run: FittedRun, conditions: torch.Tensor, captions: list[str], num_draws: int, *,
                         steps: int = 50, seed: int = 0, guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
                         progress: bool = True, scheduler: str = "ddim") -> torch.Tensor:
    """Samples in [-1, 1], (K, B, C, H, W): K posterior draws of the fusion
    coefficients (and heads, if Bayesian) per condition, all from the condition's one x_T
    (see `steered_draws`). Time and memory are linear in K (one batch of K·B images: pass fewer
    conditions per call for a large base). A deterministic run has no posterior: it gives one
    draw, (1, B, C, H, W), whatever `num_draws`."""
    sampling = {"steps": steps, "seed": seed, "guidance_scale": guidance_scale, "progress": progress,
                "scheduler": scheduler}
    if not run.bayesian:
        objective = run.objective
        return steered_sample_images(run.base, objective.adapter, objective.weights, conditions, captions,
                                   **sampling)[None]
    draws = coefficient_draws(run, num_draws, seed)
    return steered_draws(run.objective.model, draws, conditions, captions, **sampling)


def predictive_summary(draws: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior-mean images (B, C, H, W) and the per-pixel posterior sd averaged over channels
    (B, 1, H, W), in image units; the sd of a single draw is zero."""
    sd = draws.std(dim=0) if len(draws) > 1 else torch.zeros_like(draws[0])
    return draws.mean(dim=0), sd.mean(dim=1, keepdim=True)
