"""Port pruning: the rankings on planted relevances, the paired summary, and pruned sampling on tiny runs."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from bayes_bps.experiments.held_out import held_out
from bayes_bps.experiments.pruning import (
    UNPRUNED,
    head_norm_relevance,
    most_pruned_within,
    posterior_relevance,
    pruning_table,
    ranking,
    summarize_pruning,
)


def test_posterior_relevance_is_a_lower_quantile_of_the_steering_size():
    model = SimpleNamespace(base=SimpleNamespace(num_train_timesteps=1000), port_names=["a", "b", "c"],
                            log_profile=torch.tensor([16.0, 8.0, 1.0]).log())
    # flat profiles; fusion draws: "a" sure at 1, "b" at 4 ± a lot, "c" sure at 2
    generator = torch.Generator().manual_seed(0)
    fusion = torch.stack([torch.full((4000,), 1.0), 4 * torch.exp(1.5 * torch.randn(4000, generator=generator)),
                          torch.full((4000,), 2.0)], dim=1)
    draws = {"fusion": fusion, "slope": torch.zeros_like(fusion)}
    relevance = posterior_relevance(model, draws, [0, 500, 999])
    assert relevance["a"] == pytest.approx(1 / 16) and relevance["c"] == pytest.approx(2 / 16)
    assert relevance["b"] == pytest.approx(4 * np.exp(1.5 * -1.645) / 16, rel=0.1)  # its 5 % quantile
    # "b" has the largest mean, but the posterior cannot rule out that it steers little: it goes first
    assert ranking(relevance) == ["b", "a", "c"]


def _planted(losses: dict[str, float], count: int = 400) -> pd.DataFrame:
    generator = np.random.default_rng(0)
    full = generator.uniform(0.5, 1.0, count)
    rows = [pd.DataFrame({"condition": range(count), "setting": UNPRUNED, "order": "none", "pruned": 0,
                          "flops_removed": 0.0, "fidelity": full})]
    for k, (name, loss) in enumerate(losses.items(), start=1):
        rows.append(pd.DataFrame({"condition": range(count), "setting": name, "order": name.split()[0], "pruned": k,
                                  "flops_removed": 0.1 * k,
                                  "fidelity": full - loss + 0.02 * generator.standard_normal(count)}))
    return pd.concat(rows, ignore_index=True)


def test_the_summary_recovers_planted_losses_and_picks_the_most_pruned_within_tolerance():
    planted = {"posterior k=1": 0.0, "posterior k=2": 0.01, "posterior k=3": 0.1, "norm k=4": 0.0}
    summary = summarize_pruning(_planted(planted), resamples=500)
    assert list(summary.index) == [UNPRUNED, *planted]
    half_width = 1.96 * 0.02 / np.sqrt(400)  # the planted noise's standard error, at 95 %
    for name, loss in planted.items():
        row = summary.loc[name]
        assert row["loss"] == pytest.approx(loss, abs=2 * half_width), name
        assert (row["loss_high"] - row["loss_low"]) / 2 == pytest.approx(half_width, rel=0.2), name
    assert most_pruned_within(summary, "posterior", tolerance=0.02) == "posterior k=2"
    assert most_pruned_within(summary, "posterior", tolerance=-1) is None


def test_pruned_sampling_on_tiny_runs(twin_runs):
    bayesian, deterministic = twin_runs
    conditions = held_out("digits", "sketch", "test", 4, bayesian.base.resolution)
    names = bayesian.objective.model.port_names
    orders = {"forward": names, "backward": names[::-1]}
    table = pruning_table(bayesian, conditions, orders, [0, 2, len(names)], steps=2, chunk=2, progress=False)
    wide = table.pivot(index="condition", columns="setting", values="fidelity")
    removed = table.groupby("setting")["flops_removed"].first()
    assert np.array_equal(wide["forward k=0"], wide[UNPRUNED]) and removed[UNPRUNED] == 0
    assert removed["forward k=2"] > 0 and removed["forward k=2"] < removed["backward k=2"]  # the tail is dearer
    assert removed[f"forward k={len(names)}"] == 1  # nothing left to run
    again = pruning_table(bayesian, conditions, orders, [0, 2, len(names)], steps=2, chunk=4, progress=False)
    pd.testing.assert_frame_equal(table, again, atol=1e-4)  # the chunking changes nothing

    relevance = head_norm_relevance(deterministic)
    assert set(relevance) == set(names) and all(value >= 0 for value in relevance.values())
    with pytest.raises(ValueError, match="needs a deterministic run"):
        head_norm_relevance(bayesian)
    with pytest.raises(ValueError, match="must rank every port once"):
        pruning_table(bayesian, conditions, {"short": names[:3]}, [1], steps=2, progress=False)
