"""bayes_bps: Bayesian Power Steering of frozen diffusion models.

Data flows one way: data -> condition -> adapter -> ports of the frozen UNet -> likelihood
-> SVI -> posterior -> sampler -> metrics -> figures. See the README for the two commands.
"""

__version__ = "0.1.0"
