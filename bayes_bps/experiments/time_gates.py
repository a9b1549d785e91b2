"""Time gates: does the posterior say on which DDIM steps sampling can skip the steering?

The Bayesian run's time profiles give port k the weight w_k exp(s_k τ(t)) at timestep t. Port k
is **off** at t when, with posterior probability at least `level`, that weight is below
`off_fraction` of its prior median (the official constant, flat in t). The **posterior gate**
steers only from the first DDIM timestep, counted from the clean end, at which some port is on:
the steps below it skip the adapter (`steer` does not run it when every weight is zero).

Its rival is the brute-force gate: one cutoff t₀ for every port, steering only at t ≥ t₀, swept
over a grid, the largest cutoff whose loss stays within the tolerance chosen on validation
conditions and then scored on test ones.

Every gate samples the same deployed posterior predictive (one coefficient draw and one initial
noise per condition, the same for every gate), so a gate's fidelity loss against full steering
is a paired difference over conditions, with a bootstrap interval.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import torch
from diffusers import DDIMScheduler
from tqdm.auto import tqdm

from ..base import FrozenBase
from ..bayes import BayesianSteering
from ..bayes.weights import time_profile
from ..steering.steer import PortWeights
from ..training import FittedRun
from .deployed import deployed, in_given_order
from .held_out import HeldOut
from .paired import losses_against

FULL = "full"  # the gate that steers every step: the reference of every loss
POSTERIOR = "posterior"


def ddim_timesteps(base: FrozenBase, steps: int) -> np.ndarray:
    """The timesteps a DDIM loop of `steps` visits on this base, from pure noise down."""
    scheduler = DDIMScheduler.from_config(base.scheduler.config)
    scheduler.set_timesteps(steps)
    return scheduler.timesteps.numpy()


def relative_weights(model: BayesianSteering, draws: Mapping[str, torch.Tensor], timesteps) -> torch.Tensor:
    """(S, T, P): each draw's weight of each port at each timestep, w_k exp(s_k τ(t)) / m_k, with
    m_k the prior median (the official constant)."""
    timesteps = torch.as_tensor(np.asarray(timesteps))
    profile = torch.stack([time_profile(slope, timesteps, model.base.num_train_timesteps)
                           for slope in draws["slope"]])  # (S, T, P)
    return draws["fusion"][:, None, :] * profile / model.log_profile.exp()


def ports_off(model: BayesianSteering, draws: Mapping[str, torch.Tensor], timesteps, *, off_fraction: float,
              level: float) -> torch.Tensor:
    """(T, P) booleans: port k off at timestep t (P(relative weight < off_fraction) ≥ level)."""
    return (relative_weights(model, draws, timesteps) < off_fraction).float().mean(dim=0) >= level


def posterior_gate(model: BayesianSteering, draws: Mapping[str, torch.Tensor], timesteps, *,
                   off_fraction: float = 0.1, level: float = 0.9) -> int:
    """The smallest timestep the posterior gate steers: every DDIM step below it has every port
    off. 0 when the step nearest the clean image has a port on (nothing is skipped)."""
    ascending = np.sort(np.asarray(timesteps))
    all_off = ports_off(model, draws, ascending, off_fraction=off_fraction, level=level).all(dim=1).tolist()
    skipped = next((i for i, off in enumerate(all_off) if not off), len(ascending))
    return int(ascending[skipped]) if skipped < len(ascending) else int(ascending[-1]) + 1


def gated(weights: Callable[[torch.Tensor], Mapping[str, torch.Tensor]], steer_from: int) -> PortWeights:
    """Time-dependent `steer` weights that are zero at every timestep below `steer_from`."""
    def gated_weights(timesteps: torch.Tensor) -> dict[str, torch.Tensor]:
        on = (timesteps >= steer_from).float()
        return {name: on * value for name, value in weights(timesteps).items()}
    return gated_weights


def skipped_fraction(timesteps, steer_from: int) -> float:
    """The fraction of a loop's DDIM steps that a gate steering from `steer_from` skips."""
    return float(np.mean(np.asarray(timesteps) < steer_from))


def gate_table(run: FittedRun, held_out: HeldOut, gates: Mapping[str, int], *, steps: int = 20, seed: int = 0,
               chunk: int = 64, progress: bool = True) -> pd.DataFrame:
    """One row per (held-out condition, gate): the fidelity of the condition's deployed sample
    steered only from `gates[name]` on. Every gate uses the same coefficient draw and x_T per
    condition (`deployed.py`), both from `seed` and independent of `chunk`."""
    if not run.bayesian:
        raise ValueError(f"time gates need a Bayesian run's time profiles; {run.options.run_dir} is deterministic")
    samples = deployed(run, len(held_out), seed)
    rows = []
    for start in tqdm(range(0, len(held_out), chunk), desc="time gates", disable=not progress):
        index = slice(start, min(start + chunk, len(held_out)))
        for name, steer_from in gates.items():
            fidelity = samples.fidelity(held_out, index, weights=gated(samples.weights(index), steer_from), steps=steps)
            rows.append(pd.DataFrame({"condition": range(index.start, index.stop), "gate": name,
                                      "steer_from": steer_from, "fidelity": fidelity.numpy()}))
    return in_given_order(pd.concat(rows), "gate", list(gates))


def summarize_gates(table: pd.DataFrame, timesteps, resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per gate: its skipped fraction of DDIM steps, mean fidelity, and its loss against `FULL`
    (full − gated, paired over conditions) with a 95 % bootstrap interval."""
    wide = table.pivot(index="condition", columns="gate", values="fidelity")
    steer_from = table.groupby("gate")["steer_from"].first()[wide.columns]
    summary = pd.DataFrame({"steer_from": steer_from.to_numpy(),
                            "skipped_fraction": [skipped_fraction(timesteps, t) for t in steer_from],
                            "fidelity": wide.mean().to_numpy()}, index=wide.columns)
    summary = summary.join(losses_against(wide, FULL, resamples, seed=seed))
    return summary.sort_values("steer_from")


def best_cutoff(summary: pd.DataFrame, tolerance: float = 0.01) -> str:
    """The brute-force gate that skips most while its mean loss stays within `tolerance`."""
    cutoffs = summary.drop(index=POSTERIOR, errors="ignore")
    within = cutoffs[cutoffs["loss"] <= tolerance]
    return str(within["skipped_fraction"].idxmax())
