"""The methods the data-efficiency study compares, behind one interface.

Every trained method is an objective (`training.SteeringObjective`) built by the registry below
and run through the same `SteeringTrainer` with the same training pairs, steps, batch size,
learning rate and seed. What comes out is a `FittedMethod`: its size, its time per step, and a
`steering(conditions)` context inside which every call of the frozen UNet is steered, so one
DDIM sampler serves them all. Adding a method is one objective class and one registry entry.

- `unsteered`: the frozen base alone (nothing trained);
- `controlnet`, `t2i-adapter`: diffusers' own `ControlNetModel.from_unet` and `T2IAdapter`;
- `deterministic`: BPS with the official fixed constants;
- `bayesian`: Bayesian BPS; each image gets its own posterior draw of the coefficients, so
  its samples are draws from the posterior predictive.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ..base import FrozenBase, TrainingPairs, sample_images
from ..training import FitOptions, SteeringObjective, SteeringTrainer, build_objective, trainable_parameters
from ..utils.seeding import seeded
from .baselines import BASELINES

Builder = Callable[[FrozenBase, TrainingPairs, FitOptions], SteeringObjective]


def _baseline(name: str) -> Builder:
    baseline = BASELINES[name]
    return lambda base, pairs, options: baseline.objective(base, baseline.build(base, pairs.condition_channels))


def _bps(deterministic: bool) -> Builder:
    return lambda base, pairs, options: build_objective(replace(options, deterministic=deterministic), base, pairs)


# name -> objective builder; None: nothing to train
METHODS: dict[str, Builder | None] = {
    "unsteered": None,
    "controlnet": _baseline("controlnet"),
    "t2i-adapter": _baseline("t2i-adapter"),
    "deterministic": _bps(deterministic=True),
    "bayesian": _bps(deterministic=False),
}


@dataclass
class FittedMethod:
    name: str
    trainable_parameters: int
    seconds_per_step: float | None  # None: nothing was trained
    steering: Callable[[Tensor], AbstractContextManager]  # conditions -> steered-UNet context

    @torch.no_grad()
    def sample(self, base: FrozenBase, conditions: Tensor, captions: list[str], *, steps: int,
               seed: int, progress: bool = False) -> Tensor:
        """One image in [-1, 1] per (condition, caption), from seeded DDIM noise and (for the
        Bayesian method) seeded posterior draws."""
        with seeded(seed), self.steering(conditions.to(base.device)):
            return sample_images(base, captions, steps=steps, seed=seed, progress=progress)


def fit_method(name: str, base: FrozenBase, pairs: TrainingPairs, options: FitOptions,
               progress: bool = True) -> FittedMethod:
    """Train `name` on `pairs` for `options.steps` steps (nothing for `unsteered`)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    builder = METHODS[name]
    if builder is None:
        return FittedMethod(name, 0, None, lambda conditions: nullcontext())
    torch.manual_seed(options.seed)
    objective = builder(base, pairs, options)
    trainer = SteeringTrainer(base, pairs, objective, batch_size=options.batch_size, lr=options.lr,
                              guide_lr=options.guide_lr, noise_lr=options.noise_lr, grad_clip=options.grad_clip,
                              seed=options.seed, timestep_sampling=options.timestep_sampling)
    objective.train()
    start = time.perf_counter()
    trainer.train(options.steps, description=f"{name} N={len(pairs)} seed={options.seed}", progress=progress)
    seconds_per_step = (time.perf_counter() - start) / options.steps
    objective.eval()
    return FittedMethod(name, trainable_parameters(objective), seconds_per_step, objective.steering)
