"""The Bayesian steering layer: priors over the fusion coefficients and time profiles, the likelihood of
the noise, the Pyro model and guide, the ELBO objective, a NUTS reference, ArviZ diagnostics."""

from .draws import posterior_draws, prior_draws
from .guide import (
    GUIDE_FAMILIES,
    GUIDE_LEARNING_RATES,
    FlowSteeringGuide,
    FullRankSteeringGuide,
    Guide,
    SteeringGuide,
    make_guide,
)
from .likelihood import observe_noise, per_example_temperature
from .model import BayesianSteering
from .objective import ELBOObjective, kl_weight_at
from .priors import COEFFICIENTS, HEAD_SITE, SteeringPriors
from .weights import port_weights

__all__ = ["COEFFICIENTS", "GUIDE_FAMILIES", "GUIDE_LEARNING_RATES", "HEAD_SITE", "BayesianSteering", "ELBOObjective",
           "FlowSteeringGuide", "FullRankSteeringGuide", "Guide", "SteeringGuide", "SteeringPriors", "kl_weight_at",
           "make_guide", "observe_noise", "per_example_temperature", "port_weights", "posterior_draws", "prior_draws"]
