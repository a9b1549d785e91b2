"""The methods the study compares, behind one interface.

Every trained method is an objective (`training.SteeringObjective`) built by the registry below
and run through the same `SteeringTrainer` on the same training pairs and seed; its recipe
(`recipes.py`: learning rate, steps, caption dropout, timestep sampling) comes in the fit
options. What comes out is a `FittedMethod`: its size, its time per step, and a
`steering(conditions, scale)` context inside which every call of the frozen UNet is steered,
so one DDIM sampler serves them all. Adding a method is one objective class, one registry
entry and one published recipe.

- `unsteered`: the frozen base alone (nothing trained);
- `controlnet`, `t2i-adapter`: diffusers' own `ControlNetModel.from_unet` and `T2IAdapter`;
- `deterministic`: BPS with the official fixed constants;
- `bayesian`: Bayesian BPS; each image gets its own posterior draw of the coefficients, so
  its samples are draws from the posterior predictive.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ..base import FrozenBase, TrainingPairs, sample_images
from ..bayes import ELBOObjective
from ..data import make_dataset
from ..training import FitOptions, SteeringObjective, build_objective, trainable_parameters, trainer_for
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
    steering: Callable[..., AbstractContextManager]  # (conditions, scale) -> steered-UNet context
    posterior_profile: dict[str, float] | None = None  # Bayesian BPS: each port's posterior-mean w_k
    objective: SteeringObjective | None = None  # what was trained (None: nothing), for diagnostics

    @torch.no_grad()
    def sample(self, base: FrozenBase, conditions: Tensor, captions: list[str], *, steps: int,
               seed: int, scale: float = 1.0, progress: bool = False) -> Tensor:
        """One image in [-1, 1] per (condition, caption), from seeded DDIM noise and (for the
        Bayesian method) seeded posterior draws; `scale` is the conditioning scale."""
        with seeded(seed), self.steering(conditions.to(base.device), scale):
            return sample_images(base, captions, steps=steps, seed=seed, progress=progress)


def training_pairs(base: FrozenBase, domain: str, task: str, n: int, seed: int) -> TrainingPairs:
    """The first `n` pairs of the train split in seed `seed`'s order, encoded for `base`: what
    every method of a cell is fitted on."""
    train = make_dataset(domain, task, split="train", length=n, seed=seed, resolution=base.resolution)
    return TrainingPairs.encode(base, train, n, name=f"{domain}/{task}")


# (the method as fitted so far, its step, its training seconds so far) -> None
CheckpointHook = Callable[[FittedMethod, int, float], None]


def fit_method(name: str, base: FrozenBase, pairs: TrainingPairs, options: FitOptions | None,
               progress: bool = True, checkpoints: Sequence[int] = (),
               on_checkpoint: CheckpointHook | None = None) -> FittedMethod:
    """Train `name` on `pairs` for `options.steps` steps (nothing for `unsteered`, whose
    options may be None).

    At each step in `checkpoints`, `on_checkpoint` sees the method as fitted so far (in eval
    mode; training resumes after it), so a learning curve is one run, not a refit per point.
    Its time is not counted in the training seconds."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    builder = METHODS[name]
    if builder is None:
        return FittedMethod(name, 0, None, lambda conditions, scale=1.0: nullcontext())
    torch.manual_seed(options.seed)
    objective = builder(base, pairs, options)
    trainer = trainer_for(options, base, pairs, objective)
    fitted = FittedMethod(name, trainable_parameters(objective), None, objective.steering, objective=objective)
    training_seconds, started = 0.0, time.perf_counter()

    def at_step(step: int) -> None:
        nonlocal training_seconds, started
        if on_checkpoint is None or step not in checkpoints:
            return
        training_seconds += time.perf_counter() - started
        objective.eval()
        on_checkpoint(fitted, step, training_seconds)
        objective.train()
        started = time.perf_counter()

    objective.train()
    trainer.train(options.steps, on_step=at_step, description=f"{name} N={len(pairs)} seed={options.seed}",
                  progress=progress)
    training_seconds += time.perf_counter() - started
    objective.eval()
    fitted.seconds_per_step = training_seconds / options.steps
    if isinstance(objective, ELBOObjective):
        fitted.posterior_profile = objective.posterior_profile()
    return fitted
