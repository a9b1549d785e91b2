"""The one options system: flags, typed config files, ranges, nested groups, JSON records."""

import json
from pathlib import Path

import pytest

from bayes_bps.base.pretraining import PretrainOptions
from bayes_bps.experiments.options import StudyOptions
from bayes_bps.sampling.options import SampleOptions
from bayes_bps.training import FitOptions
from bayes_bps.utils import options as option_files
from bayes_bps.utils.options import OptionError


def test_a_yaml_config_is_typed_and_flags_override_it(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("lr: 1e-3\nn-train: 12\nfusion_prior_scale: 0.25\nhead-prior-scale: null\n")
    options, switches = option_files.parse(FitOptions, ["--config", str(config), "--seed", "3"], "fit", "",
                                           config_flag=True)
    assert options.lr == 1e-3 and isinstance(options.lr, float)  # YAML reads 1e-3 as a string
    assert (options.n_train, options.seed, options.priors.fusion_scale) == (12, 3, 0.25)
    assert switches["explicit"] == {"seed"}


@pytest.mark.parametrize("text, message", [
    ("lr: fast\n", r"run\.yaml: --lr must be a number, got 'fast'"),
    ("learning_rate: 0.1\n", r"run\.yaml: unknown option 'learning_rate'"),
    ("steps: 2.5\n", r"run\.yaml: --steps must be an integer"),
    ("fusion-prior-scale: -1\n", r"run\.yaml: --fusion-prior-scale must be > 0"),
])
def test_a_bad_config_names_the_file_and_the_option(tmp_path, text, message):
    config = tmp_path / "run.yaml"
    config.write_text(text)
    with pytest.raises(OptionError, match=message):
        option_files.parse(FitOptions, ["--config", str(config)], "fit", "", config_flag=True)


def test_toml_and_json_records_round_trip_with_nested_priors(tmp_path):
    (tmp_path / "run.toml").write_text('domain = "digits"\nslope_prior_scale = 4.0\n')
    options = option_files.load(FitOptions, tmp_path / "run.toml")
    assert options.domain == "digits" and options.priors.slope_scale == 4.0
    record = option_files.write(options, tmp_path / "options.json")
    assert json.loads(record.read_text())["priors"]["slope_scale"] == 4.0
    assert option_files.load(FitOptions, record) == options
    assert option_files.value_of(options, "slope_scale") == 4.0


def test_the_guide_rate_is_left_to_the_family_unless_a_flag_sets_it():
    """Without --guide-lr the objective picks the family's rate (`test_bayes.py`)."""
    def rate(*flags: str) -> float | None:
        return option_files.parse(FitOptions, list(flags), "fit", "")[0].guide_lr

    assert rate() is None and rate("--guide", "flow") is None
    assert rate("--guide", "flow", "--guide-lr", "0.02") == 0.02


def test_every_range_is_checked_once_for_every_command():
    with pytest.raises(OptionError, match="--steps must be >= 1; got 0"):
        option_files.from_mapping(PretrainOptions, {"out": "x", "steps": 0})
    with pytest.raises(OptionError, match="missing required options"):
        option_files.from_mapping(PretrainOptions, {"steps": 5})
    with pytest.raises(OptionError, match="--steps must be <= 1000"):
        option_files.from_mapping(SampleOptions, {"steps": 5000})
    with pytest.raises(OptionError, match="--methods must be one of"):
        option_files.from_mapping(StudyOptions, {"study": "data-efficiency", "methods": ["magic"]})
    with pytest.raises(OptionError, match="unknown domain 'faces'"):
        option_files.from_mapping(FitOptions, {"domain": "faces"})
    assert option_files.from_mapping(PretrainOptions, {"out": "x", "data": "folder:p"}).domain == "folder:p"
    assert option_files.from_mapping(PretrainOptions, {"out": "x"}).out == Path("x")


def test_help_shows_each_flag_beside_its_default(capsys):
    with pytest.raises(SystemExit):
        option_files.parse(FitOptions, ["--help"], "python -m bayes_bps.fit", "")
    text = capsys.readouterr().out
    for expected in ("--fusion-prior-scale", "sd of log w_k", "[1.0]", "--preset {official-sd15,lite,tiny}",
                     "--no-sample-cache"):
        assert expected in text, expected
