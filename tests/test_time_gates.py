"""Time gates: the posterior gate against its closed form, the paired loss summary on planted
losses, and the gated sampling on a tiny run."""

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from bayes_bps.base import sample_images, start_noise
from bayes_bps.experiments.held_out import held_out
from bayes_bps.experiments.time_gates import (
    FULL,
    POSTERIOR,
    best_cutoff,
    gate_table,
    posterior_gate,
    skipped_fraction,
    summarize_gates,
)
from bayes_bps.metrics import condition_fidelity

DDIM_20 = np.arange(950, -1, -50)  # the timesteps of a 20-step DDIM loop over T = 1000
PROFILE = torch.tensor([16.0, 1.0])  # two ports' prior medians


def _model_and_draws(slopes: list[list[float]]):
    """A stand-in model (what the gate reads: T and the prior medians) and draws whose fusion
    coefficients sit at the prior medians, with the given slopes (one row per draw)."""
    model = SimpleNamespace(base=SimpleNamespace(num_train_timesteps=1000), log_profile=PROFILE.log())
    slope = torch.tensor(slopes)
    return model, {"fusion": PROFILE.expand(len(slope), -1), "slope": slope}


def test_the_posterior_gate_recovers_the_closed_form_cutoff():
    # relative weight exp(s τ) < 0.1  ⇔  τ < ln(0.1)/s  ⇔  t < 500 (1 + ln(0.1)/s)
    model, draws = _model_and_draws([[3.0, 4.0]] * 10)
    last_off = 500 * (1 + math.log(0.1) / 3.0)  # the port that stays on longest: 116.2
    expected = int(min(t for t in DDIM_20 if t > last_off))
    assert expected == 150
    assert posterior_gate(model, draws, DDIM_20, off_fraction=0.1, level=0.9) == expected
    assert skipped_fraction(DDIM_20, expected) == pytest.approx(3 / 20)


def test_a_port_left_on_or_an_unsure_posterior_skips_nothing():
    model, flat = _model_and_draws([[3.0, 0.0]] * 10)  # the second port is flat: never off
    assert posterior_gate(model, flat, DDIM_20, off_fraction=0.1, level=0.9) == 0
    model, unsure = _model_and_draws([[3.0, 3.0]] * 5 + [[0.0, 0.0]] * 5)  # off in half the draws
    assert posterior_gate(model, unsure, DDIM_20, off_fraction=0.1, level=0.9) == 0
    assert posterior_gate(model, unsure, DDIM_20, off_fraction=0.1, level=0.5) == 150


def _planted_table(losses: dict[str, float], count: int = 400, seed: int = 0) -> pd.DataFrame:
    """Full-steering fidelity per condition, and each gate's fidelity lower by its planted loss
    plus noise; the gate's name is its cutoff."""
    generator = np.random.default_rng(seed)
    full = generator.uniform(0.5, 1.0, count)
    rows = [pd.DataFrame({"condition": range(count), "gate": FULL, "steer_from": 0, "fidelity": full})]
    for name, loss in losses.items():
        fidelity = full - loss + 0.02 * generator.standard_normal(count)
        rows.append(pd.DataFrame({"condition": range(count), "gate": name, "steer_from": int(name),
                                  "fidelity": fidelity}))
    return pd.concat(rows, ignore_index=True)


def test_the_summary_recovers_planted_losses_and_the_best_cutoff_keeps_the_tolerance():
    planted = {"200": 0.0, "400": 0.005, "600": 0.04}
    summary = summarize_gates(_planted_table(planted), DDIM_20, resamples=500)
    assert list(summary.index) == [FULL, "200", "400", "600"]
    assert summary.loc[FULL, "loss"] == 0 and summary.loc[FULL, "skipped_fraction"] == 0
    for name, loss in planted.items():
        row = summary.loc[name]
        assert row["loss_low"] < loss < row["loss_high"] and row["loss"] == pytest.approx(loss, abs=0.004)
        assert row["skipped_fraction"] == pytest.approx(int(name) / 1000)
    assert best_cutoff(summary, tolerance=0.01) == "400"  # 600 skips more but loses 0.04
    assert best_cutoff(summary, tolerance=0.001) == "200"


def test_gated_sampling_on_a_tiny_run(twin_runs):
    run = twin_runs[0]
    conditions = held_out("digits", "sketch", "test", 5, run.base.resolution)
    gates = {FULL: 0, "same as full": 0, "skip all": 1000, POSTERIOR: 500}
    table = gate_table(run, conditions, gates, steps=2, chunk=2, progress=False)
    wide = table.pivot(index="condition", columns="gate", values="fidelity")
    assert list(wide.index) == list(range(5)) and set(wide.columns) == set(gates)
    assert np.array_equal(wide[FULL], wide["same as full"])
    # steering no step is the frozen base from the same x_T
    noise = start_noise(run.base, 5, torch.Generator().manual_seed(0))
    frozen = sample_images(run.base, conditions.captions, noise=noise, steps=2, progress=False)
    unsteered = condition_fidelity("sketch", frozen, conditions.conditions, conditions.captions)["edge_f1"]
    assert np.allclose(wide["skip all"], unsteered.numpy(), atol=1e-6)
    again = gate_table(run, conditions, gates, steps=2, chunk=5, progress=False)
    pd.testing.assert_frame_equal(table, again, atol=1e-4)  # the chunking changes nothing


def test_time_gates_need_a_bayesian_run(twin_runs):
    with pytest.raises(ValueError, match="time gates need a Bayesian run"):
        gate_table(twin_runs[1], held_out("digits", "sketch", "test", 1, 32), {FULL: 0}, progress=False)
