"""Empirical-Bayes profiles: deterministic BPS refitted with a Bayesian cell's posterior-mean constants."""

import numpy as np
import pytest

from bayes_bps import study
from bayes_bps.base import FrozenBase
from bayes_bps.experiments import eb_profiles
from bayes_bps.experiments.data_efficiency import PROFILE_COLUMNS
from bayes_bps.experiments.eb_profiles import Cell
from bayes_bps.experiments.options import StudyOptions
from bayes_bps.experiments.records import append_rows, profiles_path, read_rows, scores_path
from bayes_bps.steering import profile_weights
from bayes_bps.utils import options as option_files
from bayes_bps.viz.figures import plot_profiles_and_heads, plot_profiles_by_task
from tests.test_study import _args


@pytest.mark.slow
def test_eb_refits_pair_with_the_grids_deterministic_cells_and_official_constants_change_nothing(
        tiny_base, tmp_path, monkeypatch):
    out = tmp_path / "study"
    grid = _args("data-efficiency", tiny_base, out, "--settings", "published", "--steps", "2", "--seeds", "0", "1",
                 "--methods", "deterministic", "bayesian")
    study.main(grid)
    options, _ = option_files.parse(StudyOptions, grid, "study", "")
    recorded = eb_profiles.recorded_profiles(out, "digits")
    cells = [Cell("digits", "sketch", 3, seed) for seed in (0, 1)]
    assert set(recorded) == set(cells)

    # the control: a "posterior" that is exactly the official constants refits the grid's cell itself
    official = profile_weights(FrozenBase.from_pretrained(str(tiny_base)).unet, "head-heavy")
    planted = Cell("digits", "sketch", 99, 0)
    append_rows(profiles_path(out, "digits"), PROFILE_COLUMNS, [
        {"domain": "digits", "task": "sketch", "n_train": 99, "seed": 0, "method": "bayesian", "port": port,
         "fusion_mean": value} for port, value in official.items()])
    eb_profiles.refit(options, planted, cells[0], progress=False)
    same = [row for row in read_rows(eb_profiles.eb_scores_path(out, "digits")) if row["source"] == str(planted)]
    grid_scores = [row for row in read_rows(scores_path(out, "digits"))
                   if (row["method"], row["seed"]) == ("deterministic", "0")]
    assert [(r["metric"], r["index"], r["score"]) for r in same] == \
        [(r["metric"], r["index"], r["score"]) for r in grid_scores]

    # the comparison proper: each cell refitted with its own posterior's profile
    fitted = []
    original = eb_profiles.fit_method
    monkeypatch.setattr(eb_profiles, "fit_method", lambda *a, **k: fitted.append(a[0]) or original(*a, **k))
    pairs = [(cell, cell) for cell in cells]
    assert eb_profiles.eb_against_official(out, pairs) is None  # not refitted yet
    for source, target in pairs:
        eb_profiles.refit(options, source, target, progress=False)
    eb_profiles.refit(options, *pairs[0], progress=False)  # done already: resumes past it
    assert fitted == ["deterministic", "deterministic"]
    difference = eb_profiles.eb_against_official(out, pairs, resamples=50)
    eb = np.array([[float(r["score"]) for r in read_rows(eb_profiles.eb_scores_path(out, "digits"))
                    if (r["source"], r["metric"]) == (str(cell), "edge_f1")] for cell in cells])
    grid = np.array([[float(r["score"]) for r in read_rows(scores_path(out, "digits"))
                      if (r["method"], r["seed"], r["metric"]) == ("deterministic", str(cell.seed), "edge_f1")]
                     for cell in cells])
    assert (difference.seeds, difference.conditions) == (2, 4)
    assert difference.delta == pytest.approx(float((eb - grid).mean()))
    assert (out / "eb-profiles" / "digits-sketch-n3-seed1.json").is_file()

    # a cell the grid finished before it recorded profiles: its Bayesian fit is redone for the profile
    eb_profiles.record_profile(options, cells[0], progress=False)  # recorded by the grid: nothing to fit
    assert len(fitted) == 2
    eb_profiles.record_profile(options, Cell("digits", "sketch", 3, 2), progress=False)
    assert fitted[2:] == ["bayesian"] and Cell("digits", "sketch", 3, 2) in eb_profiles.recorded_profiles(out, "digits")

    with pytest.raises(ValueError, match="no profile of digits/sketch/n7/seed0"):
        eb_profiles.refit(options, Cell("digits", "sketch", 7, 0), cells[0], progress=False)
    with pytest.raises(ValueError, match="one per seed"):
        eb_profiles.eb_against_official(out, [(cells[0], cells[0]), (cells[1], cells[0])])


def test_the_profile_figure_draws_each_task_against_the_official_constants():
    official = {"down.0.0": 4.0, "mid": 4.0, "up.0.0": 1.0}
    profiles = {"sketch": [{"down.0.0": 2.0, "mid": 8.0, "up.0.0": 0.5}, {"down.0.0": 3.0, "mid": 6.0, "up.0.0": 0.7}],
                "style": [{"down.0.0": 1.0, "mid": 2.0, "up.0.0": 3.0}]}
    axis = plot_profiles_by_task(profiles, official).axes[0]
    assert axis.get_yscale() == "log" and len(axis.containers) == 2  # an errorbar per task
    sketch = np.asarray(axis.containers[0].lines[0].get_ydata(), dtype=float)
    np.testing.assert_allclose(sketch, [2.5, 7.0, 0.6])  # the mean over its seeds
    assert [text.get_text() for text in axis.get_legend().get_texts()] == [
        "official (prior mean)", "sketch (2 seeds)", "style (1 seed)"]


def test_the_settings_figure_draws_what_was_measured_and_says_what_was_not():
    eb = {"profiles": {"sketch": [{"down.0.0": 2.0, "up.0.0": 0.5}]}, "official": {"down.0.0": 4.0, "up.0.0": 1.0},
          "differences": {"sketch, N=40": {"delta": 0.02, "low": -0.01, "high": 0.05, "seeds": 3, "conditions": 64},
                          "style, N=40": None}}
    heads = {"n": 10, "checkpoints": [250, 500],
             "methods": {"deterministic": {"strength": "weight decay", "chosen": [0.1, 500],
                                           "validation": {"0.0": {"250": 0.80, "500": 0.82},
                                                          "0.1": {"250": 0.81, "500": 0.84}}},
                         "bayesian-heads": {"strength": "likelihood temperature", "chosen": None, "validation": {}}},
             "heads_minus_regularised": None}
    profile_axis, delta_axis, heads_axis = plot_profiles_and_heads(eb, heads).axes
    measured = np.asarray(delta_axis.containers[0].lines[0].get_xdata(), dtype=float)
    np.testing.assert_allclose(measured, [0.02])  # only the measured difference
    assert [label.get_text() for label in delta_axis.get_yticklabels()] == ["sketch, N=40 (3 seeds)"]
    assert len(heads_axis.get_lines()) == 3  # a curve per strength, and the chosen one marked
    np.testing.assert_allclose(heads_axis.get_lines()[2].get_xydata(), [[500, 0.84]])
    assert "test: not yet run" in heads_axis.get_title()

    nothing = plot_profiles_and_heads(None, None).axes
    assert [axis.texts[0].get_text() for axis in nothing] == ["not measured yet"] * 3
