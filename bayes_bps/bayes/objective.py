"""The negative ELBO of the Bayesian steering model, as the training loop's objective."""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch
from pyro.infer import Trace_ELBO
from torch import Tensor, nn

from ..base import NoisyBatch
from ..steering import BPSAdapter, steer
from .draws import posterior_draws
from .guide import SteeringGuide
from .model import BayesianSteering
from .priors import HEAD_SITE


def kl_weight_at(step: int, anneal_steps: int) -> float:
    """Linear KL annealing from 0 to 1 over `anneal_steps` (no annealing when 0)."""
    return 1.0 if anneal_steps <= 0 else min(1.0, (step + 1) / anneal_steps)


class ELBOObjective(nn.Module):
    """The negative ELBO of model and guide as a differentiable torch loss, for `SteeringTrainer`.

    One Monte Carlo draw of the coefficients per step; `kl_anneal_steps` > 0 ramps the weight
    of the KL term (prior and guide densities) linearly from 0 to 1. With point-estimated heads
    the network's ε-MSE at the prior median is added: the two terms share no parameter, so one
    backward pass fits the network and the posterior in the same step.
    """

    def __init__(self, model: BayesianSteering, example_batch: NoisyBatch, kl_anneal_steps: int = 0):
        super().__init__()
        self.model, self.guide = model, SteeringGuide(model)
        self.kl_anneal_steps = kl_anneal_steps
        self.elbo = Trace_ELBO()
        self.guide(example_batch)  # create the guide's parameters, so optimizers can see them
        self.guide.start_at_prior()
        self.loss_label = "-elbo" if model.bayesian_heads else "-elbo + network mse"

    def forward(self, batch: NoisyBatch, step: int) -> Tensor:
        self.model.kl_weight = kl_weight_at(step, self.kl_anneal_steps)
        loss = self.elbo.differentiable_loss(self.model, self.guide, batch)
        return loss if self.model.bayesian_heads else loss + self.model.network_loss(batch)

    @torch.no_grad()
    def export_adapter(self) -> BPSAdapter:
        """The adapter to save: with Bayesian heads, their posterior medians are written into
        its (otherwise unused) head parameters, so `from_pretrained` gives the median network."""
        adapter = self.model.adapter
        for site, value in self.guide.median().items():
            if site.startswith(HEAD_SITE):
                adapter.heads.get_parameter(site[len(HEAD_SITE):]).copy_(value)
        return adapter

    def parameter_groups(self, lr: float, guide_lr: float) -> list[dict]:
        """The network (adapter body and σ) at `lr`, the variational parameters at `guide_lr`."""
        network = [p for p in self.model.parameters() if p.requires_grad]
        return [{"params": network, "lr": lr}, {"params": list(self.guide.parameters()), "lr": guide_lr}]

    def steering(self, conditions: Tensor) -> AbstractContextManager:
        """`steer` with its own posterior draw of the coefficients for each condition, so every
        image sampled inside is one draw from the posterior predictive (draws from torch's RNG)."""
        model = self.model
        if model.bayesian_heads:
            raise ValueError("one adapter call cannot vary Bayesian head weights per image; "
                             "use `sampling.posterior_predictive`, which loops over draws")
        draws = posterior_draws(self.guide, len(conditions))
        return steer(model.base.unet, model.adapter, conditions, model.weights_per_image(draws, 1))
