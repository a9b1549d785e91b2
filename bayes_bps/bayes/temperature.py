"""A data-calibrated likelihood temperature: the sandwich rule of generalised Bayes.

A tempered posterior π_λ(θ) ∝ p(θ) Π_i p(ε_i | θ)^λ is calibrated (Lyddon, Holmes & Walker,
2019) by matching its curvature to the sampling variability of the data's score:

    λ = tr(H) / tr(J),   H = E_i[−∇²_θ log p(ε_i | θ)],   J = E_i[∇_θ log p(ε_i | θ) ∇_θ log p(ε_i | θ)ᵀ]

over the coefficients θ (log w and the slopes s) at the guide's mean. For a well-specified
model H = J and λ = 1 (a test checks it on data simulated from the model). Here the D pixel
residuals of one example are strongly correlated, so one example's score varies far more than D
independent terms would (J ≫ H) and λ comes out small: it says how many independent
observations an example is worth, measured instead of assumed.

Both traces need only how ε̂ moves with each port's weight. θ enters ε̂ only through the
per-example port weights ω_ik = w_k exp(s_k τ_i) ρ_k/16, and example i's output depends only on
its own ω_i, so one forward pass with port k's weight scaled by e^δ for every example gives
D_ik = ∂ε̂_i/∂ log ω_ik for the whole batch (a forward difference): P + 1 forward passes per
batch, no backward. With ∂ log ω_ik/∂(log w_k, s_k) = (1, τ_i),

    tr(H_i) = Σ_k |D_ik|² c_i / σ_i²,   |∇ℓ_i|² = Σ_k (r_i · D_ik)² c_i / σ_i⁴,   c_i = 1 + τ_i²

(H is the Gauss–Newton, i.e. Fisher, matrix of the Gaussian likelihood; r_i = ε_i − ε̂_i). Both
are summed over `batches` training steps (a few hundred examples), then λ is fixed.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..base import NoisyBatch
from ..steering import steered_noise
from .weights import noise_position

DIFFERENCE_STEP = 1e-3  # δ in log ω: small against the weights' curvature, large against float rounding
CALIBRATION_BATCHES = 25


class SandwichEstimate(nn.Module):
    """Running sums of tr(H) and tr(J) over calibration batches; a module, so checkpoints keep it."""

    def __init__(self, batches: int = CALIBRATION_BATCHES):
        super().__init__()
        self.batches = batches
        self.register_buffer("trace_h", torch.zeros((), dtype=torch.float64))
        self.register_buffer("trace_j", torch.zeros((), dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @property
    def done(self) -> bool:
        return int(self.count) >= self.batches

    @property
    def temperature(self) -> float:
        return float(self.trace_h / self.trace_j)

    def add(self, model, guide, batch: NoisyBatch) -> None:
        """Add one batch's traces, at the guide's mean coefficients (heads are point estimates)."""
        traces = batch_traces(model, guide.median(), batch)
        self.trace_h += traces[0]
        self.trace_j += traces[1]
        self.count += 1


@torch.no_grad()
def weight_derivatives(model, coefficients: dict[str, Tensor], batch: NoisyBatch) -> tuple[Tensor, Tensor]:
    """(ε̂, D): the prediction at `coefficients`, flattened to (B, pixels), and D_ik = ∂ε̂_i/∂ log ω_ik
    as (B, P, pixels), by one forward difference per port (see the module docstring)."""
    weights = model.weights_for(coefficients)
    predicted = steered_noise(model.base, model.adapter, batch, weights).double().flatten(1)
    derivatives = []
    for port in model.port_names:
        def nudged(timesteps, k=port):
            values = weights(timesteps)
            return {**values, k: values[k] * math.exp(DIFFERENCE_STEP)}

        nudged_prediction = steered_noise(model.base, model.adapter, batch, nudged).double().flatten(1)
        derivatives.append((nudged_prediction - predicted) / DIFFERENCE_STEP)
    return predicted, torch.stack(derivatives, dim=1)


@torch.no_grad()
def batch_traces(model, coefficients: dict[str, Tensor], batch: NoisyBatch) -> tuple[float, float]:
    """(Σ_i tr(H_i), Σ_i |∇ℓ_i|²) over the batch at `coefficients` (see the module docstring)."""
    sigma = model.noise_scale(batch.timesteps).double()
    chain = 1 + noise_position(batch.timesteps, model.base.num_train_timesteps).double() ** 2  # |∂ log ω/∂θ_k|²
    predicted, derivatives = weight_derivatives(model, coefficients, batch)
    residual = batch.noise.double().flatten(1) - predicted
    trace_h = (derivatives.square().sum(dim=2) * (chain / sigma**2)[:, None]).sum()
    trace_j = ((torch.einsum("bpd,bd->bp", derivatives, residual) ** 2) * (chain / sigma**4)[:, None]).sum()
    return float(trace_h), float(trace_j)


@torch.no_grad()
def gauss_newton_precision(model, coefficients: dict[str, Tensor], batch: NoisyBatch) -> Tensor:
    """The tempered, plate-scaled Gauss–Newton precision of the likelihood over θ = (log w, s),
    (2P, 2P) in the order of `COEFFICIENTS`: λ N/B Σ_i J_iᵀ J_i / σ_i², J_i = [D_i, τ_i D_i]."""
    sigma = model.noise_scale(batch.timesteps).double()
    position = noise_position(batch.timesteps, model.base.num_train_timesteps).double()
    _, derivatives = weight_derivatives(model, coefficients, batch)
    jacobian = torch.cat([derivatives, derivatives * position[:, None, None]], dim=1)  # (B, 2P, pixels)
    precision = torch.einsum("bpd,bqd,b->pq", jacobian, jacobian, 1 / sigma**2)
    return precision * float(model.temperature) * model.n_train / len(batch.timesteps)
