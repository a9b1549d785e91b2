"""Training: the objective protocol, the deterministic recipe, the loop, checkpoints, the fit's
options and its run folder."""

from .deterministic import DeterministicObjective
from .objective import SteeringObjective, trainable_parameters
from .options import FitOptions
from .runs import FittedRun, base_and_pairs, build_objective, load_run
from .trainer import NonFiniteLossError, SteeringTrainer, train_adapter, trainer_for

__all__ = ["DeterministicObjective", "FitOptions", "FittedRun", "NonFiniteLossError", "SteeringObjective",
           "SteeringTrainer", "base_and_pairs", "build_objective", "load_run", "train_adapter",
           "trainable_parameters", "trainer_for"]
