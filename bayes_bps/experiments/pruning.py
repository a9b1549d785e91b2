"""Port relevance and pruning: does the posterior say which ports the steering can do without?

A scale-free adapter adds at port k a residual of RMS w_k(t) ρ_k/16 to a hidden state of RMS ρ_k
(`bayes/weights.py`), so w_k(t)/16 is the size of its steering relative to what it steers. Two
rankings, least relevant first:

- `posterior` (the Bayesian run): the 5 % posterior quantile of w_k(t)/16 averaged over the
  DDIM steps. A port goes first when the posterior cannot rule out that it steers little;
- `head norm` (the deterministic BPS twin, whose zero-initialised heads carry the magnitude):
  the fusion constant times the Frobenius norm of the head's weights.

Each run drops the first k ports of its ranking (`BPSAdapter(..., ports=kept)` runs neither
their heads nor a decoder tail that feeds only them) and is scored against its unpruned self on
the same conditions, noise and coefficient draws (`deployed.py`). The posterior ranking
reversed (most relevant first) is the control that a ranking which means anything must beat.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from ..bayes import BayesianSteering
from ..bayes.weights import STEERING_UNIT
from ..training import FittedRun
from .deployed import deployed, in_given_order
from .held_out import HeldOut
from .paired import losses_against
from .time_gates import relative_weights

UNPRUNED = "unpruned"


def posterior_relevance(model: BayesianSteering, draws: Mapping[str, torch.Tensor], timesteps,
                        quantile: float = 0.05) -> dict[str, float]:
    """Per port: the `quantile` of the posterior of its steering size w_k(t)/16, averaged over `timesteps`."""
    size = relative_weights(model, draws, timesteps) * model.log_profile.exp() * STEERING_UNIT  # (S, T, P)
    lower = torch.quantile(size.mean(dim=1), quantile, dim=0)
    return dict(zip(model.port_names, lower.tolist()))


def head_norm_relevance(run: FittedRun) -> dict[str, float]:
    """Per port of a deterministic run: fusion constant × Frobenius norm of its head's weights."""
    if run.bayesian:
        raise ValueError(f"the head-norm ranking needs a deterministic run's zero-initialised heads; "
                         f"{run.options.run_dir} is Bayesian (its heads are scale-free)")
    adapter, weights = run.objective.adapter, run.objective.weights
    return {name: float(weights[name]) * float(head.weight.detach().norm())
            for name, head in zip(adapter.port_names, adapter.heads)}


def ranking(relevance: Mapping[str, float]) -> list[str]:
    """Port names, least relevant first."""
    return sorted(relevance, key=relevance.get)


@torch.no_grad()
def adapter_flops(run: FittedRun, condition: torch.Tensor, ports: Sequence[str] | None = None) -> int:
    """FLOPs of one adapter call on one condition (`FlopCounterMode`), with only `ports` kept."""
    unet, adapter = run.base.unet, run.adapter
    config = unet.config
    sample = torch.zeros(1, config.in_channels, config.sample_size, config.sample_size)
    time_embedding = unet.time_embedding(unet.get_time_embed(sample, torch.tensor([500])))
    with FlopCounterMode(display=False) as counter:
        adapter(condition[:1], time_embedding, ports=ports)
    return counter.get_total_flops()


@torch.no_grad()
def pruning_table(run: FittedRun, held_out: HeldOut, orders: Mapping[str, Sequence[str]], counts: Sequence[int], *,
                  steps: int = 20, seed: int = 0, chunk: int = 64, progress: bool = True) -> pd.DataFrame:
    """One row per (held-out condition, setting): the deployed sample's fidelity with the first k
    ports of an order pruned, for every order and every k in `counts`, and `UNPRUNED` (k = 0).
    `flops_removed` is the fraction of the adapter's FLOPs the pruning saves."""
    names = run.adapter.port_names
    settings = {UNPRUNED: ("none", 0, names)}
    for order_name, order in orders.items():
        if sorted(order) != sorted(names):
            raise ValueError(f"order {order_name!r} must rank every port once: {names}; got {list(order)}")
        for k in counts:
            settings[f"{order_name} k={k}"] = (order_name, k, [name for name in names if name not in order[:k]])
    total = adapter_flops(run, held_out.conditions)
    removed = {name: 1 - adapter_flops(run, held_out.conditions, kept) / total
               for name, (_, _, kept) in settings.items()}
    samples, rows = deployed(run, len(held_out), seed), []
    for start in tqdm(range(0, len(held_out), chunk), desc="pruning", disable=not progress):
        index = slice(start, min(start + chunk, len(held_out)))
        for name, (order_name, k, kept) in settings.items():
            fidelity = samples.fidelity(held_out, index, adapter=partial(run.adapter, ports=kept), steps=steps)
            rows.append(pd.DataFrame({"condition": range(index.start, index.stop), "setting": name,
                                      "order": order_name, "pruned": k, "flops_removed": removed[name],
                                      "fidelity": fidelity.numpy()}))
    return in_given_order(pd.concat(rows), "setting", list(settings))


def summarize_pruning(table: pd.DataFrame, resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per setting: the ports pruned, the adapter FLOPs removed, mean fidelity, and its loss
    against `UNPRUNED` (paired over conditions) with a 95 % bootstrap interval."""
    wide = table.pivot(index="condition", columns="setting", values="fidelity")
    facts = table.groupby("setting")[["order", "pruned", "flops_removed"]].first().loc[wide.columns]
    summary = facts.assign(fidelity=wide.mean()).join(losses_against(wide, UNPRUNED, resamples, seed=seed))
    return summary.loc[list(dict.fromkeys(table["setting"]))]


def most_pruned_within(summary: pd.DataFrame, order: str, tolerance: float = 0.02) -> str | None:
    """The setting of `order` that removes the most FLOPs at a mean loss within `tolerance`."""
    within = summary[(summary["order"] == order) & (summary["loss"] <= tolerance)]
    return None if within.empty else str(within["flops_removed"].idxmax())
