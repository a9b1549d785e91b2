"""The likelihood and plate code of the Bayesian steering model on a conjugate toy.

Bayesian linear regression with one coefficient, y_i ~ Normal(θ x_i, σ)^λ and a Normal prior
on θ, has a Normal posterior in closed form. SVI with minibatches of the same `observe_noise`
(plate subsampling and temperature included) must recover it.
"""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO
from pyro.infer.autoguide import AutoNormal
from pyro.nn import PyroModule, PyroSample

from bayes_bps.bayes import observe_noise

PRIOR_MEAN, PRIOR_SD, NOISE_SD, N = 0.5, 2.0, 0.5, 200


class ToyRegression(PyroModule):
    def __init__(self, x, y, temperature):
        super().__init__()
        self.x, self.y, self.temperature = x, y, temperature
        self.theta = PyroSample(dist.Normal(PRIOR_MEAN, PRIOR_SD))

    def forward(self, indices):
        predicted = self.theta * self.x[indices]
        observe_noise(predicted, self.y[indices], torch.tensor(NOISE_SD), N, indices, self.temperature)


def exact_posterior(x, y, temperature):
    precision = 1 / PRIOR_SD**2 + temperature * (x * x).sum() / NOISE_SD**2
    mean = (PRIOR_MEAN / PRIOR_SD**2 + temperature * (x * y).sum() / NOISE_SD**2) / precision
    return mean.item(), precision.rsqrt().item()


@pytest.mark.slow
@pytest.mark.parametrize("temperature", [1.0, 0.01])
def test_minibatch_svi_recovers_the_tempered_conjugate_posterior(temperature):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(N, 1, generator=generator)
    y = 1.3 * x + NOISE_SD * torch.randn(N, 1, generator=generator)
    pyro.set_rng_seed(0)
    model = ToyRegression(x, y, temperature)
    guide = AutoNormal(model, init_scale=0.1)
    loss_fn = Trace_ELBO(num_particles=2)(model, guide)
    loss_fn(torch.arange(20))  # materialise the guide's parameters
    optimizer = torch.optim.Adam(loss_fn.parameters(), lr=0.05)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.998)
    iterates = []  # Polyak averaging of the last iterates smooths the minibatch noise
    for step in range(1500):
        loss = loss_fn(torch.randperm(N, generator=generator)[:20])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step >= 1000:
            iterates.append((guide.locs.theta.item(), guide.scales.theta.item()))

    mean, sd = exact_posterior(x, y, temperature)
    fitted_mean, fitted_sd = torch.tensor(iterates).mean(dim=0).tolist()
    # Stated tolerance: mean within 0.2 posterior sd, sd within 10 % of the exact values.
    assert abs(fitted_mean - mean) < 0.2 * sd, (fitted_mean, mean, sd)
    assert abs(fitted_sd / sd - 1) < 0.10, (fitted_sd, sd)
