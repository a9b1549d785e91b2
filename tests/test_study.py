"""The study on a tiny base: the tune stage, the grid, its files, paired differences and resume."""

import csv

import numpy as np
import pytest

from bayes_bps import study
from bayes_bps.experiments import data_efficiency, tuning
from bayes_bps.experiments.methods import METHODS
from bayes_bps.experiments.recipes import PUBLISHED, Recipe, read_settings, write_settings
from bayes_bps.experiments.tables import PAIRED_COLUMNS

TRAINED = [method for method in METHODS if METHODS[method] is not None]


def _args(stage, tiny_base, out, *extra):
    return [stage, "--out", str(out), "--domains", "digits", "--base", f"digits={tiny_base}",
            "--tune-domain", "digits", "--n", "3", "--seeds", "0", "--batch-size", "2", "--preset", "tiny",
            "--eval-samples", "4", "--reference-samples", "5", "--ddim-steps", "2", "--bootstrap-resamples", "20",
            *extra]


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_a_small_grid_runs_every_method_pairs_them_and_resumes(tiny_base, tmp_path, monkeypatch):
    out = tmp_path / "study"
    study.main(_args("data-efficiency", tiny_base, out, "--settings", "published", "--steps", "2",
                     "--seeds", "0", "1"))
    rows = _rows(out / "results-digits.csv")
    assert {row["method"] for row in rows} == set(METHODS) and {row["task"] for row in rows} == {"sketch"}
    assert {"domain FD", "domain KID", "edge_f1", "label_agreement"} <= {row["metric"] for row in rows}
    for row in rows:
        assert row["n"] in ("4", "5 vs 4") and float(row["low"]) <= float(row["value"]) <= float(row["high"])
        assert row["steps"] == ("0" if row["method"] == "unsteered" else "2")
        if row["method"] != "unsteered":
            assert float(row["lr"]) == PUBLISHED[row["method"]].lr and float(row["scale"]) == 1.0
    parameters = {row["method"]: int(row["trainable_parameters"]) for row in rows}
    assert parameters["unsteered"] == 0 and all(parameters[m] > 0 for m in TRAINED)

    # per-image scores and features behind the paired differences
    scores = _rows(out / "scores-digits.csv")
    bayesian = [row for row in scores if (row["method"], row["seed"], row["metric"]) == ("bayesian", "1", "edge_f1")]
    assert [row["index"] for row in bayesian] == ["0", "1", "2", "3"]
    assert np.load(out / "features-digits" / "sketch-n3-seed1-controlnet.npy").shape[0] == 4
    profiles = _rows(out / "profiles-digits.csv")  # each Bayesian cell's posterior-mean w_k per port
    ports = {row["port"] for row in profiles}
    assert {(row["method"], row["seed"]) for row in profiles} == {("bayesian", "0"), ("bayesian", "1")}
    assert len(profiles) == 2 * len(ports) and all(float(row["fusion_mean"]) > 0 for row in profiles)
    paired = _rows(out / "paired.csv")
    assert list(paired[0]) == PAIRED_COLUMNS
    against = {(row["method"], row["reference"]) for row in paired if row["metric"] == "edge_f1"}
    assert ("bayesian", "deterministic") in against and ("controlnet", "unsteered") in against
    assert ("t2i-adapter", "bayesian") in against and ("bayesian", "bayesian") not in against
    assert all(row["seeds"] == "2" and float(row["low"]) <= float(row["delta"]) <= float(row["high"])
               for row in paired)
    for name in ("data_efficiency.png", "paired.png", "table.md", "paired.md", "wall_time.csv",
                 "options-data-efficiency-digits.json"):
        assert (out / name).is_file(), name

    # a second invocation skips the finished cells and runs only the new seed
    fitted = []
    original = data_efficiency.fit_method
    monkeypatch.setattr(data_efficiency, "fit_method",
                        lambda name, *a, **k: fitted.append(name) or original(name, *a, **k))
    study.main(_args("data-efficiency", tiny_base, out, "--settings", "published", "--steps", "2",
                     "--seeds", "0", "1"))
    assert fitted == [] and len(_rows(out / "results-digits.csv")) == len(rows)
    study.main(_args("data-efficiency", tiny_base, out, "--settings", "published", "--steps", "2",
                     "--seeds", "2", "--methods", "unsteered", "deterministic"))
    assert fitted == ["unsteered", "deterministic"]

    # --tables-only fits nothing, not even a seed never run, and rebuilds the derived files
    for name in ("paired.csv", "paired.md", "table.md"):
        (out / name).unlink()
    options_record = (out / "options-data-efficiency-digits.json").read_text()
    study.main(_args("data-efficiency", tiny_base, out, "--settings", "published", "--seeds", "7", "--tables-only"))
    assert fitted == ["unsteered", "deterministic"] and len(_rows(out / "wall_time.csv")) == 3
    assert (out / "options-data-efficiency-digits.json").read_text() == options_record
    seeds = {(row["method"], row["reference"]): row["seeds"] for row in _rows(out / "paired.csv")}
    assert seeds[("deterministic", "unsteered")] == "3" and seeds[("bayesian", "deterministic")] == "2"
    assert (out / "table.md").is_file() and (out / "paired.md").is_file()


@pytest.mark.slow
def test_the_tune_stage_records_curves_and_scales_and_writes_settings_the_grid_reads(tiny_base, tmp_path,
                                                                                     monkeypatch):
    out = tmp_path / "tune"
    argv = _args("tune", tiny_base, out, "--methods", "unsteered", "deterministic", "controlnet",
                 "--learning-rates", "1e-4", "1e-2", "--curve-steps", "1", "3", "--scales", "0.5", "1.5")
    study.main(argv)
    curves = _rows(out / "curves.csv")
    runs = {(row["method"], float(row["lr"]), int(row["step"])) for row in curves if row["metric"] == "edge_f1"}
    assert runs == {(m, lr, step) for m in ("deterministic", "controlnet") for lr in (1e-4, 1e-2) for step in (1, 3)}
    assert all(float(row["wall_seconds"]) > 0 for row in curves)
    sweep = _rows(out / "sweep.csv")
    assert {(row["method"], row["stage"]) for row in sweep} == {
        (m, stage) for m in ("deterministic", "controlnet") for stage in ("learning-rate", "scale")}
    settings = read_settings(out / "settings.csv", ["deterministic", "controlnet"])
    assert settings["controlnet"].caption_dropout == 0.5 and settings["controlnet"].lr in (1e-4, 1e-2)
    assert settings["deterministic"].steps in (1, 3) and settings["deterministic"].conditioning_scale in (0.5, 1.5)
    best = max((row for row in sweep if (row["method"], row["stage"], row["metric"]) ==
                ("deterministic", "scale", "edge_f1")), key=lambda row: float(row["value"]))
    assert settings["deterministic"].conditioning_scale == float(best["scale"])
    assert (out / "curves.png").is_file()

    # resumed: nothing is refitted
    real_fit = tuning.fit_method
    fitted = []
    monkeypatch.setattr(tuning, "fit_method", lambda name, *a, **k: fitted.append(name))
    study.main(argv)
    assert fitted == []

    # a widened scale grid: one refit per method, scored at the new scale only
    monkeypatch.setattr(tuning, "fit_method", lambda name, *a, **k: fitted.append(name) or real_fit(name, *a, **k))
    study.main(argv[:-2] + ["1.5", "3.0"])
    assert fitted == ["deterministic", "controlnet"]
    scales = [float(row["scale"]) for row in _rows(out / "sweep.csv")
              if (row["method"], row["stage"], row["metric"]) == ("deterministic", "scale", "edge_f1")]
    assert sorted(scales) == [0.5, 1.5, 3.0]


def test_settings_round_trip_and_errors_name_the_file(tmp_path):
    path = tmp_path / "settings.csv"
    recipes = {"controlnet": Recipe(lr=3e-5, steps=500, caption_dropout=0.5, conditioning_scale=1.5, source="tuned")}
    write_settings(path, recipes)
    assert read_settings(path, ["controlnet"]) == recipes
    with pytest.raises(ValueError, match=r"settings\.csv: no settings for bayesian"):
        read_settings(path, ["controlnet", "bayesian"])
    with pytest.raises(ValueError, match="run `python -m bayes_bps.study tune` first"):
        read_settings(tmp_path / "missing.csv", ["controlnet"])


def test_study_flags_are_checked(tiny_base, tmp_path):
    with pytest.raises(SystemExit):
        study.main(_args("data-efficiency", tiny_base, tmp_path / "s", "--steps", "0"))
    with pytest.raises(SystemExit):
        study.main(["data-efficiency", "--domains", "digits", "--base", "nowhere=somewhere"])
    with pytest.raises(SystemExit):  # no settings file yet
        study.main(_args("data-efficiency", tiny_base, tmp_path / "s", "--settings", str(tmp_path / "none.csv")))
    with pytest.raises(SystemExit):
        study.main(_args("tune", tiny_base, tmp_path / "s", "--curve-steps", "5", "2"))
    with pytest.raises(SystemExit, match="tune stage has none"):
        study.main(_args("tune", tiny_base, tmp_path / "s", "--tables-only"))
    with pytest.raises(SystemExit, match="no finished cell"):
        study.main(_args("data-efficiency", tiny_base, tmp_path / "empty", "--tables-only"))
