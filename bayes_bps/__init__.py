"""bayes_bps: Bayesian Power Steering of frozen diffusion models.

Data flows one way, and the subpackages are its stages, each importing only the ones before it:

    utils -> data -> base -> steering -> bayes -> training -> sampling -> metrics -> experiments -> viz

The command-line programs (`fit`, `sample`, `study`, `pretrain`, `extract`) are thin modules at
the top. See the README for the two commands.
"""

__version__ = "0.1.0"
