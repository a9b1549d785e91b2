"""bayes_bps: Bayesian Power Steering of frozen diffusion models.

Data flows one way, and the subpackages are its stages, each importing only the ones before it:

    utils -> data -> base -> steering -> bayes -> training -> sampling -> pipelines -> metrics
          -> experiments -> viz

The command-line programs (`fit`, `sample`, `study`, `pretrain`, `extract`, `export`) are thin
modules at the top. See the README for the two commands.

The classes an exported pipeline folder names in its `model_index.json` are reachable here,
as diffusers' loader looks for them (`bayes_bps.BPSAdapter`, ...); they are imported on first
use, so `import bayes_bps` stays cheap.
"""

import importlib

__version__ = "0.1.0"

_COMPONENTS = {
    "BPSPipeline": "bayes_bps.pipelines.bps",
    "BPSBasePipeline": "bayes_bps.pipelines.base",
    "BPSAdapter": "bayes_bps.steering.adapter",
    "SteeringPosterior": "bayes_bps.bayes.exported",
    "CaptionEncoder": "bayes_bps.base.caption_encoder",
    "DomainClassifier": "bayes_bps.base.classifier",
}


def __getattr__(name: str):
    if name in _COMPONENTS:
        return getattr(importlib.import_module(_COMPONENTS[name]), name)
    raise AttributeError(f"module 'bayes_bps' has no attribute {name!r}")
