"""The deployed samples of a fitted run, held fixed across every ablation of it.

Each held-out condition gets one initial noise and, for a Bayesian run, one posterior draw of the
coefficients (so its sample is a draw from the posterior predictive); a deterministic run steers
every condition with its fixed port weights. An ablation (a time gate, a pruned port set) then
changes only what it ablates, and its fidelity loss is a paired difference over conditions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch

from ..base import start_noise
from ..bayes import posterior_draws
from ..metrics import PRIMARY_SCORE, condition_fidelity
from ..sampling import steered_sample_images
from ..steering.steer import PortWeights
from ..training import FittedRun
from ..utils.seeding import seeded
from .held_out import HeldOut


@dataclass
class Deployed:
    """One run's deployed steering for `count` held-out conditions."""

    run: FittedRun
    noise: torch.Tensor  # (count, C, H, W): x_T per condition
    draws: dict[str, torch.Tensor] | None  # one coefficient draw per condition; None if deterministic

    def weights(self, index: slice) -> PortWeights:
        """The port weights of the conditions in `index`."""
        if self.draws is None:
            return self.run.objective.weights
        return self.run.objective.model.weights_per_image({site: value[index] for site, value in self.draws.items()}, 1)

    @torch.no_grad()
    def fidelity(self, held_out: HeldOut, index: slice, *, adapter: Callable | None = None,
                 weights: PortWeights | None = None, steps: int = 20) -> torch.Tensor:
        """The task's primary fidelity of the deployed samples of `index`, with the adapter or
        the weights swapped for an ablated one."""
        conditions, captions = held_out.conditions[index], held_out.captions[index]
        images = steered_sample_images(self.run.base, adapter or self.run.adapter, weights or self.weights(index),
                                       conditions, captions, noise=self.noise[index], steps=steps, progress=False)
        task = self.run.options.task
        return condition_fidelity(task, images, conditions, captions)[PRIMARY_SCORE[task]]


def deployed(run: FittedRun, count: int, seed: int = 0) -> Deployed:
    """The deployed steering of `count` conditions: draws and noise from `seed` (the caller's RNG
    state is kept)."""
    if run.bayesian and run.objective.model.bayesian_heads:
        raise ValueError(f"{run.options.run_dir} has Bayesian port heads: one adapter call cannot give each "
                         "deployed sample its own head weights")
    draws = None
    if run.bayesian:
        with seeded(seed):
            draws = posterior_draws(run.objective.guide, count)
    return Deployed(run, start_noise(run.base, count, torch.Generator().manual_seed(seed)), draws)


def in_given_order(table: pd.DataFrame, column: str, order: list[str]) -> pd.DataFrame:
    """An ablation table sorted setting by setting, in `order`, then by condition."""
    position = {name: i for i, name in enumerate(order)}
    return table.sort_values([column, "condition"], ignore_index=True,
                             key=lambda values: values.map(position) if values.name == column else values)
