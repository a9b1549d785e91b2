"""The negative ELBO of the Bayesian steering model, as the training loop's objective."""

from __future__ import annotations

from contextlib import AbstractContextManager

import pyro
import torch
from pyro.infer import Trace_ELBO
from torch import Tensor, nn

from ..base import NoisyBatch
from ..steering import BPSAdapter, steer
from .draws import posterior_draws
from .guide import GUIDE_LEARNING_RATES, make_guide
from .model import BayesianSteering
from .priors import HEAD_SITE
from .temperature import SandwichEstimate

# Per-group gradient clipping: the network is clipped as the official recipe clips it; σ(t) and
# the variational parameters are few, Adam-normalised, and would otherwise be clipped every
# step by σ's large early gradient (N (1 − MSE/σ²)), which would slow the network with them.
NETWORK_GROUP, NOISE_GROUP, GUIDE_GROUP = "network", "noise scale", "guide"


def kl_weight_at(step: int, anneal_steps: int) -> float:
    """Linear KL annealing from 0 to 1 over `anneal_steps` (no annealing when 0)."""
    return 1.0 if anneal_steps <= 0 else min(1.0, (step + 1) / anneal_steps)


def strength_at(step: int, warmup_steps: int) -> float:
    """The steering strength α: 0 at step 0 (the frozen UNet), 1 from step `warmup_steps` on."""
    return min(1.0, step / max(1, warmup_steps))


class ELBOObjective(nn.Module):
    """The negative ELBO of model and guide, per training pair, as a differentiable torch loss.

    One Monte Carlo draw of the coefficients per step, and one UNet pass: the network, σ(t) and
    the guide all follow the same loss (see `model.py`). Divided by N, the loss is per example,
    so the network's gradient has the size of a σ-weighted ε-MSE whatever N is.

    - `warmup_steps`: the steering strength α ramps from 0 to 1 (the steered UNet starts as the
      frozen one);
    - `kl_anneal_steps` > 0 ramps the weight of the KL term (prior and guide densities) from 0 to 1;
    - `calibrate_temperature`: from the end of the warm-up, the next `calibration.batches` steps
      estimate λ by the sandwich rule (`temperature.py`) at the guide's mean, and λ is fixed to it;
    - `guide_family`: the variational family, mean-field, full-rank or flow (`guide.py`).
    """

    def __init__(self, model: BayesianSteering, example_batch: NoisyBatch, *, warmup_steps: int = 0,
                 kl_anneal_steps: int = 0, calibrate_temperature: bool = False, guide_family: str = "mean-field"):
        super().__init__()
        self.model, self.guide, self.guide_family = model, make_guide(model, guide_family), guide_family
        self.warmup_steps, self.kl_anneal_steps = warmup_steps, kl_anneal_steps
        self.calibration = SandwichEstimate() if calibrate_temperature else None
        self.elbo = Trace_ELBO()
        self.guide(example_batch)  # create the guide's parameters, so optimizers can see them
        self.guide.start_at_prior()
        self.loss_label = "-elbo per pair"

    def forward(self, batch: NoisyBatch, step: int) -> Tensor:
        model = self.model
        model.kl_weight = kl_weight_at(step, self.kl_anneal_steps)
        if self.calibration is not None and step >= self.warmup_steps and not self.calibration.done:
            self.calibration.add(model, self.guide, batch)
            if self.calibration.done:
                model.temperature.fill_(self.calibration.temperature)
        strength = strength_at(step, self.warmup_steps)
        # A guide gone non-finite (a diverged flow) must give a NaN loss, which the trainer reports
        # with the last good checkpoint, not a validation error of Pyro's from inside the guide
        with pyro.validation_enabled(False):
            return self.elbo.differentiable_loss(model, self.guide, batch, strength) / model.n_train

    @torch.no_grad()
    def scalars(self) -> dict[str, float]:
        """What a tracker follows: KL(q ‖ p) per pair (the rest of the loss is the tempered
        likelihood), λ, σ(t) per noise band, and each port's posterior medians."""
        model = self.model
        kl = self.guide.total_kl()
        scalars = {"kl_per_pair": kl / model.n_train, "kl_nats": kl, "temperature": float(model.temperature)}
        scalars.update({f"sigma/band_{k}": float(value)
                        for k, value in enumerate(model.noise_scale.log_scale.exp())})
        median = self.guide.median()
        for site in ("fusion", "slope"):
            scalars.update({f"{site}/{port}": float(value) for port, value in zip(model.port_names, median[site])})
        return scalars

    @torch.no_grad()
    def export_adapter(self) -> BPSAdapter:
        """The adapter to save: with Bayesian heads, their posterior medians are written into
        its head parameters, so `from_pretrained` gives the median network."""
        adapter = self.model.adapter
        for site, value in self.guide.median().items():
            if site.startswith(HEAD_SITE):
                adapter.heads.get_parameter(site[len(HEAD_SITE):]).copy_(value)
        return adapter

    def parameter_groups(self, lr: float, guide_lr: float | None = None, noise_lr: float = 5e-2,
                         **rates) -> list[dict]:
        """Three groups, each clipped on its own: the network at `lr` (clipped and decayed as the
        trainer clips and decays every network), σ(t) at `noise_lr` and the variational
        parameters at `guide_lr`, by default their family's rate (`GUIDE_LEARNING_RATES`); both
        unclipped, and never decayed: an L2 pull towards zero would be a second, unstated prior
        on them."""
        network = [p for name, p in self.model.named_parameters() if not name.startswith("noise_scale.")]
        guide_lr = GUIDE_LEARNING_RATES[self.guide_family] if guide_lr is None else guide_lr
        return [{"name": NETWORK_GROUP, "params": network, "lr": lr},
                {"name": NOISE_GROUP, "params": list(self.model.noise_scale.parameters()), "lr": noise_lr,
                 "max_grad_norm": None, "weight_decay": 0.0},
                {"name": GUIDE_GROUP, "params": list(self.guide.parameters()), "lr": guide_lr, "max_grad_norm": None,
                 "weight_decay": 0.0}]

    def posterior_profile(self) -> dict[str, float]:
        """Each port's posterior-mean fusion coefficient E[w_k], on the official constants' scale:
        fixed constants for a deterministic refit (an empirical-Bayes profile). In closed form,
        so it draws nothing (a guide draw would also carry every Bayesian head weight)."""
        return dict(zip(self.model.port_names, self.guide.fusion_mean().tolist(), strict=True))

    def steering(self, conditions: Tensor, scale: float = 1.0) -> AbstractContextManager:
        """`steer` with its own posterior draw of the coefficients for each condition, so every
        image sampled inside is one draw from the posterior predictive (draws from torch's RNG).

        Bayesian port heads are adapter weights, which one adapter call cannot vary per image:
        the call's images share the first draw's heads. Each image is still a posterior-predictive
        draw, but they are not independent of one another; `sampling.posterior_predictive` gives
        every draw its own heads."""
        model = self.model
        draws = posterior_draws(self.guide, len(conditions))
        adapter = model.adapter_with_heads({site: value[0] for site, value in draws.items()})
        return steer(model.base.unet, adapter, conditions, model.weights_per_image(draws, 1), scale)
