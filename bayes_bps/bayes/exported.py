"""The fitted steering coefficients as a diffusers component: safetensors, no Pyro, no data.

`SteeringPosterior` holds what sampling needs from a fit, and nothing of its training:

- Bayesian: the guide's Normal over (log w_k, s_k) per port (locations, scales and the
  Cholesky factor L of their correlation, the identity for a mean-field guide) and the
  reference scales ρ_k; a draw is w_k = exp(μ + σ z), s_k = μ + σ z with z = L ξ, ξ ~ N(0, I),
  which is exactly the guide's distribution over the same unconstrained space. A flow guide has
  no such closed form: its export also holds `bank`, the guide's summary draws of (log w, s)
  (4096 by default), and a draw is one of its rows, picked uniformly; the Normal's entries then
  hold the draws' moments, for reading;
- deterministic: the fixed port weights of the official recipe.

`save_pretrained` / `from_pretrained` (diffusers' `ModelMixin`) write and read it, so an
exported pipeline folder needs nothing else to sample the posterior predictive.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor

from .weights import STEERING_UNIT, weights_per_image


class SteeringPosterior(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, port_names: list[str], bayesian: bool, num_train_timesteps: int, bank_draws: int = 0):
        super().__init__()
        ports = len(port_names)
        for name in ("fusion_loc", "fusion_scale", "slope_loc", "slope_scale", "reference", "fixed_weights"):
            self.register_buffer(name, torch.zeros(ports))
        self.register_buffer("correlation_cholesky", torch.eye(2 * ports))  # (log w, s) of every port
        self.register_buffer("bank", torch.zeros(bank_draws, 2 * ports))  # a flow's draws of (log w, s)

    @classmethod
    def from_guide(cls, model, guide) -> SteeringPosterior:
        """The posterior of a fitted `BayesianSteering` model and its `SteeringGuide`."""
        if model.bayesian_heads:
            raise ValueError("a run with Bayesian heads cannot be exported: its head weights are draws too, "
                             "and the exported adapter holds one set")
        bank = guide.exported_draws()
        posterior = cls(list(model.port_names), True, model.base.num_train_timesteps,
                        bank_draws=0 if bank is None else len(bank))
        with torch.no_grad():
            if bank is not None:
                posterior.bank.copy_(bank)
            for site in ("fusion", "slope"):
                location, scale = guide.marginal(site)  # unconstrained: log w and s
                getattr(posterior, f"{site}_loc").copy_(location.detach())
                getattr(posterior, f"{site}_scale").copy_(scale.detach())
            posterior.correlation_cholesky.copy_(guide.correlation_cholesky())
            posterior.reference.copy_(model.reference)
        return posterior

    @classmethod
    def from_weights(cls, weights: dict[str, float], num_train_timesteps: int) -> SteeringPosterior:
        """The fixed port weights of a deterministic fit."""
        posterior = cls(list(weights), False, num_train_timesteps)
        with torch.no_grad():
            posterior.fixed_weights.copy_(torch.tensor([float(weights[name]) for name in weights]))
        return posterior

    def draws(self, num_draws: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """`num_draws` joint draws (K, P) of the fusion coefficients and slopes."""
        self._require_bayesian("draws")
        ports = len(self.config.port_names)
        if len(self.bank):
            rows = self.bank[torch.randint(len(self.bank), (num_draws,), generator=generator).to(self.bank.device)]
            return {"fusion": rows[:, :ports].exp(), "slope": rows[:, ports:]}
        noise = torch.randn((2, num_draws, ports), generator=generator).to(self.fusion_loc)
        z = torch.cat(list(noise), dim=1) @ self.correlation_cholesky.T  # (K, 2P): log w's, then slopes
        return {"fusion": torch.exp(self.fusion_loc + self.fusion_scale * z[:, :ports]),
                "slope": self.slope_loc + self.slope_scale * z[:, ports:]}

    def mean(self) -> dict[str, Tensor]:
        """The posterior means (K = 1): E w = exp(μ + σ²/2), E s = μ (a bank's own means)."""
        self._require_bayesian("mean")
        if len(self.bank):
            ports = len(self.config.port_names)
            return {"fusion": self.bank[:, :ports].exp().mean(0)[None], "slope": self.bank[:, ports:].mean(0)[None]}
        return {"fusion": torch.exp(self.fusion_loc + self.fusion_scale**2 / 2)[None], "slope": self.slope_loc[None]}

    def port_weights(self, coefficients: dict[str, Tensor] | None, batch: int) -> Callable | dict[str, float]:
        """`steer` weights for K·B images steered by K coefficient draws (the fixed weights of a
        deterministic fit, whatever `coefficients`)."""
        names = list(self.config.port_names)
        if not self.config.bayesian:
            return {name: float(value) for name, value in zip(names, self.fixed_weights)}
        return weights_per_image(coefficients["fusion"], coefficients["slope"], batch, self.config.num_train_timesteps,
                                 names, STEERING_UNIT * self.reference)

    def _require_bayesian(self, what: str) -> None:
        if not self.config.bayesian:
            raise ValueError(f"a deterministic fit has fixed port weights, no posterior {what}")
