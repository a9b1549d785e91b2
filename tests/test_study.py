"""The data-efficiency study on a tiny base: every method, the CSV, resume, figure and table."""

import csv

import pytest

from bayes_bps import study
from bayes_bps.experiments import data_efficiency
from bayes_bps.experiments.methods import METHODS


def _args(tiny_base, out, *extra):
    return ["data-efficiency", "--out", str(out), "--domains", "digits", "--base", f"digits={tiny_base}",
            "--n", "3", "--seeds", "0", "--steps", "2", "--batch-size", "2", "--preset", "tiny",
            "--eval-samples", "4", "--ddim-steps", "2", "--bootstrap-resamples", "20", *extra]


def _rows(out):
    with open(out / "results-digits.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_a_small_study_runs_every_method_and_resumes(tiny_base, tmp_path, monkeypatch):
    out = tmp_path / "study"
    study.main(_args(tiny_base, out))
    rows = _rows(out)
    assert {row["method"] for row in rows} == set(METHODS)
    metrics = {row["metric"] for row in rows}
    assert {"domain FD", "domain KID", "edge_f1", "label_agreement"} <= metrics
    for row in rows:
        assert row["n"] in ("4", "4 vs 4") and float(row["low"]) <= float(row["value"]) <= float(row["high"])
    parameters = {row["method"]: int(row["trainable_parameters"]) for row in rows}
    assert parameters["unsteered"] == 0 and all(parameters[m] > 0 for m in METHODS if m != "unsteered")
    ratios = {row["method"]: row["step_time_ratio"] for row in rows}
    assert ratios["unsteered"] == "" and float(ratios["controlnet"]) > 0
    for name in ("data_efficiency.png", "data_efficiency.pdf", "table.md"):
        assert (out / name).is_file(), name
    assert "| digits | 3 | bayesian |" in (out / "table.md").read_text()

    # a second invocation skips the finished cells and only runs the new seed
    fitted = []
    original = data_efficiency.fit_method
    monkeypatch.setattr(data_efficiency, "fit_method",
                        lambda name, *a, **k: fitted.append(name) or original(name, *a, **k))
    study.main(_args(tiny_base, out))
    assert fitted == [] and len(_rows(out)) == len(rows)
    study.main(_args(tiny_base, out, "--seeds", "0", "1", "--methods", "unsteered", "deterministic"))
    assert fitted == ["unsteered", "deterministic"]
    assert {row["seed"] for row in _rows(out)} == {"0", "1"}


def test_study_flags_are_checked(tiny_base, tmp_path):
    with pytest.raises(SystemExit):
        study.main(_args(tiny_base, tmp_path / "s", "--steps", "0"))
    with pytest.raises(SystemExit):
        study.main(["data-efficiency", "--domains", "digits", "--base", "shapes=somewhere"])
