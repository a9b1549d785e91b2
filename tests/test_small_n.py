"""Bayesian heads against a regularised deterministic BPS at small N (experiments/small_n.py)."""

import numpy as np
import pytest

from bayes_bps.experiments import small_n
from bayes_bps.experiments.recipes import Recipe
from bayes_bps.experiments.records import append_rows, read_rows

RECIPES = {"deterministic": Recipe(lr=1e-3, steps=2, conditioning_scale=1.5),
           "bayesian": Recipe(lr=3e-3, steps=2, conditioning_scale=2.0)}


def _setup(out, **changes):
    settings = {"out": out, "recipes": RECIPES, "strengths": (("deterministic", (0.0, 1.0)),
                                                             ("bayesian-heads", (0.2,)))}
    return small_n.SmallN(**settings | changes)


def test_the_winner_is_the_best_validation_checkpoint_of_a_finished_search(tmp_path):
    setup = _setup(tmp_path)
    rows = [{"method": "deterministic", "strength": strength, "step": step, "metric": metric, "value": value,
             "low": 0, "high": 1, "n": 4}
            for strength, step, value in ((0.0, 1, 0.5), (0.0, 2, 0.6), (1.0, 1, 0.7), (1.0, 2, 0.4))
            for metric, value in (("edge_f1", value), ("label_agreement", 1 - value))]
    append_rows(setup.search_path("deterministic"), small_n.SEARCH_COLUMNS, rows[:4])
    assert small_n.chosen(setup, "deterministic") is None  # weight decay 1.0 not searched yet
    append_rows(setup.search_path("deterministic"), small_n.SEARCH_COLUMNS, rows[4:])
    assert small_n.chosen(setup, "deterministic") == (1.0, 1)  # by edge F1, not label agreement


def test_options_regularise_each_method_its_own_way(tmp_path):
    setup = _setup(tmp_path)
    deterministic = small_n.fit_options(setup, "deterministic", 0.1, seed=2, steps=500)
    heads = small_n.fit_options(setup, "bayesian-heads", 0.2, seed=2, steps=500)
    assert (deterministic.weight_decay, deterministic.priors.head_scale, deterministic.lr) == (0.1, None, 1e-3)
    assert deterministic.temperature is None  # deterministic BPS has no likelihood to temper
    assert (heads.weight_decay, heads.priors.head_scale, heads.temperature, heads.lr) == (0.0, 1.0, 0.2, 3e-3)
    assert deterministic.steps == heads.steps == 500 and heads.n_train == 10 and heads.seed == 2


@pytest.mark.slow
def test_search_then_test_on_a_tiny_base_resumes_and_pairs_the_same_conditions(tiny_base, tmp_path, monkeypatch):
    setup = _setup(tmp_path, domain="digits", base=str(tiny_base), n=3, seeds=(0, 1), checkpoints=(1, 2),
                   validation_conditions=4, test_conditions=4, ddim_steps=2, batch_size=2, preset="tiny",
                   resamples=50)
    fitted = []
    original = small_n.fit_method
    monkeypatch.setattr(small_n, "fit_method", lambda name, *a, **k: fitted.append(name) or original(name, *a, **k))
    small_n.search(setup, ["deterministic"], progress=False)
    assert fitted == ["deterministic"] * 2
    assert small_n.test_scores(setup, "deterministic", "edge_f1") is None  # not tested yet
    small_n.search(setup, ["deterministic", "bayesian-heads"], progress=False)  # resumes: heads only
    assert fitted == ["deterministic"] * 2 + ["bayesian"]
    rows = read_rows(setup.search_path("deterministic"))
    assert {(float(r["strength"]), int(r["step"])) for r in rows} == {(0.0, 1), (0.0, 2), (1.0, 1), (1.0, 2)}
    assert {r["metric"] for r in rows} == {"edge_f1", "label_agreement"}

    small_n.test(setup, list(small_n.METHODS), progress=False)
    small_n.test(setup, list(small_n.METHODS), progress=False)  # nothing left to fit
    assert len(fitted) == 3 + 2 * 2
    heads, deterministic = (small_n.test_scores(setup, m, "edge_f1") for m in ("bayesian-heads", "deterministic"))
    assert heads.shape == deterministic.shape == (2, 4)
    difference = small_n.heads_against_regularised(setup)
    assert difference.seeds == 2 and difference.conditions == 4
    assert difference.delta == pytest.approx(float(np.mean(heads - deterministic)))
    assert difference.low <= difference.delta <= difference.high
