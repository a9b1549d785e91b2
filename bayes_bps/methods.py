"""The methods the data-efficiency study compares, behind one interface.

Every trained method goes through the same `SteeringTrainer` loop with the same training
pairs, steps, batch size, learning rate and seed. What comes out is a `FittedMethod`: its
size, its time per step, and a `steering(conditions)` context inside which every call of the
frozen UNet is steered, so one DDIM sampler serves them all.

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

from .baselines import BASELINES, trainable_parameters
from .bayes import ELBOObjective
from .fit_options import FitOptions
from .pairs import TrainingPairs
from .ports import steer
from .prior import FrozenPrior
from .runs import build_objective
from .sample import ddim_sample, posterior_steering
from .train import SteeringTrainer

METHODS = ("unsteered", "controlnet", "t2i-adapter", "deterministic", "bayesian")


@dataclass
class FittedMethod:
    name: str
    trainable_parameters: int
    seconds_per_step: float | None  # None: nothing was trained
    steering: Callable[[Tensor], AbstractContextManager]  # conditions -> steered-UNet context

    @torch.no_grad()
    def sample(self, prior: FrozenPrior, conditions: Tensor, captions: list[str], *, steps: int,
               seed: int, progress: bool = False) -> Tensor:
        """One image in [-1, 1] per (condition, caption), from seeded DDIM noise."""
        torch.manual_seed(seed)  # the Bayesian posterior draws
        with self.steering(conditions.to(prior.device)):
            return ddim_sample(prior, captions, steps=steps, seed=seed, progress=progress)


def _objective(name: str, prior: FrozenPrior, pairs: TrainingPairs, options: FitOptions):
    if name in BASELINES:
        return BASELINES[name].objective(prior, BASELINES[name].build(prior, pairs.condition_channels))
    return build_objective(options, prior, pairs)


def _steering(name: str, prior: FrozenPrior, objective) -> Callable[[Tensor], AbstractContextManager]:
    if name in BASELINES:
        return lambda conditions: BASELINES[name].steering(prior.unet, objective.module, conditions)
    if isinstance(objective, ELBOObjective):
        return lambda conditions: posterior_steering(objective.model, objective.guide, conditions)
    return lambda conditions: steer(prior.unet, objective.adapter, conditions, objective.scales)


def fit_method(name: str, prior: FrozenPrior, pairs: TrainingPairs, options: FitOptions,
               progress: bool = True) -> FittedMethod:
    """Train `name` on `pairs` for `options.steps` steps (nothing for `unsteered`)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    if name == "unsteered":
        return FittedMethod(name, 0, None, lambda conditions: nullcontext())
    options = replace(options, deterministic=name == "deterministic")
    torch.manual_seed(options.seed)
    objective = _objective(name, prior, pairs, options)
    trainer = SteeringTrainer(prior, pairs, objective, batch_size=options.batch_size, lr=options.lr,
                              guide_lr=options.guide_lr, grad_clip=options.grad_clip, seed=options.seed)
    objective.train()
    start = time.perf_counter()
    trainer.train(options.steps, description=f"{name} N={len(pairs)} seed={options.seed}", progress=progress)
    seconds_per_step = (time.perf_counter() - start) / options.steps
    objective.eval()
    return FittedMethod(name, trainable_parameters(objective), seconds_per_step,
                        _steering(name, prior, objective))
