"""`python -m bayes_bps.fit` end to end on a tiny base: outputs, resume after a kill, bad input."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings

import arviz as az
import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from bayes_bps.export import main as export_main
from bayes_bps.fit import main
from bayes_bps.sample import main as sample_main
from bayes_bps.training import load_run
from bayes_bps.training.checkpoint import latest_checkpoint, load_checkpoint_state
from bayes_bps.training.lock import LOCK_FILE

TINY = ["--domain", "digits", "--n-train", "6", "--preset", "tiny", "--batch-size", "2",
        "--posterior-draws", "2", "--grid-conditions", "2", "--eval-samples", "3", "--ddim-steps", "2"]


def run_args(base, out, *extra):
    return [*TINY, "--base", str(base), "--out", str(out), *extra]


def test_bayesian_fit_writes_every_output(tiny_base, tmp_path, capsys):
    out = tmp_path / "run"
    main(run_args(tiny_base, out, "--steps", "3", "--checkpoint-every", "2"))
    options = json.loads((out / "options.json").read_text())
    assert options["steps"] == 3 and options["temperature"] is None and not options["deterministic"]
    facts = json.loads((out / "run.json").read_text())
    assert facts["temperature"] == 1 / (16 * 16) and facts["processes"] == 1
    for name in ("loss.csv", "loss.png", "posterior.nc", "posterior_summary.csv", "fusion_forest.png",
                 "weight_profiles.png", "samples.png", "evaluation.json", "posterior_profile.json"):
        assert (out / name).is_file(), name
    assert (out / "loss.csv").read_text().splitlines()[0] == "step,negative_elbo_per_pair"
    assert len((out / "loss.csv").read_text().splitlines()) == 4
    assert latest_checkpoint(out).name == "step_000003"
    assert (latest_checkpoint(out) / "adapter" / "config.json").is_file()
    summary = (out / "posterior_summary.csv").read_text()
    assert "fusion[mid]" in summary and "hdi_3%" in summary
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation["steered"]["edge_f1"]["n"] == 3
    predictive = evaluation["posterior_predictive"]["edge_f1"]
    assert predictive["low"] <= predictive["value"]
    assert "caption_agreement" in evaluation["steered"]
    idata = az.from_netcdf(out / "posterior.nc")
    assert {"posterior", "prior", "log_likelihood", "observed_data", "posterior_predictive", "svi_trace"} <= set(
        idata.groups())
    assert idata.log_likelihood["noise"].shape == (1, 64, 6) and idata.observed_data["noise"].shape[0] == 6
    assert idata.posterior_predictive["edge_f1"].shape == (1, 2, 2)  # --posterior-draws x --grid-conditions
    assert len(idata.svi_trace["loss"]) == 3 and "level" in idata.posterior.coords
    with warnings.catch_warnings():  # a 3-step fit on 6 pairs: Pareto k is high, as it should be
        warnings.simplefilter("ignore", UserWarning)
        assert np.isfinite(az.loo(idata).elpd_loo)

    # an empirical-Bayes refit: deterministic BPS with the posterior-mean profile as its constants
    profile = json.loads((out / "posterior_profile.json").read_text())
    assert set(profile) == set(idata.posterior.port.values) and all(value > 0 for value in profile.values())
    main(run_args(tiny_base, tmp_path / "eb", "--deterministic", "--steps", "1", "--profile",
                  str(out / "posterior_profile.json")))
    assert load_run(tmp_path / "eb").objective.weights == profile


def test_deterministic_fit_and_dry_run(tiny_base, tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"steps": 7, "seed": 4, "deterministic": True}))
    main(run_args(tiny_base, tmp_path / "dry", "--config", str(config), "--steps", "2", "--dry-run"))
    printed = capsys.readouterr().out
    resolved = json.loads(printed[: printed.index("# run folder")])
    assert (resolved["steps"], resolved["seed"], resolved["deterministic"]) == (2, 4, True)
    assert not (tmp_path / "dry").exists()

    out = tmp_path / "det"
    main(run_args(tiny_base, out, "--deterministic", "--steps", "2"))
    assert (out / "loss.csv").read_text().startswith("step,mse")
    assert not (out / "posterior.nc").exists() and (out / "samples.png").is_file()


def _final_state(run_dir):
    state = load_checkpoint_state(latest_checkpoint(run_dir))
    return state["step"], state["objective"], state["losses"]


@pytest.mark.slow
def test_a_killed_fit_resumes_to_the_same_final_state(tiny_base, tmp_path):
    # Every run in its own process with one thread, so float reductions happen in one order.
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = run_args(tiny_base, "{out}", "--steps", "24", "--checkpoint-every", "2",
                      "--eval-samples", "1", "--grid-conditions", "1")

    def command(out, *extra):
        return [sys.executable, "-m", "bayes_bps.fit", *[a.replace("{out}", str(out)) for a in common], *extra]

    reference, killed = tmp_path / "reference", tmp_path / "killed"
    subprocess.run(command(reference), check=True, capture_output=True, env=environment)
    process = subprocess.Popen(command(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=environment)
    deadline = time.time() + 120
    while latest_checkpoint(killed) is None and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    at_kill = latest_checkpoint(killed)
    assert at_kill is not None and load_checkpoint_state(at_kill)["step"] < 24, "killed too late to test"

    subprocess.run(command(killed, "--resume"), check=True, capture_output=True, env=environment)
    step, objective, losses = _final_state(killed)
    reference_step, reference_objective, reference_losses = _final_state(reference)
    assert step == reference_step == 24 and losses == reference_losses
    for name, value in reference_objective.items():
        assert torch.equal(objective[name], value), name


@pytest.mark.parametrize("extra, message", [
    (["--task", "layout"], "domain 'digits' has no task 'layout'"),
    (["--n-train", "5000"], "the 1437 digits of the train split .*got 5000"),
    (["--domain", "shapes"], "domain 'shapes' has 3-channel images; a base that draws 1-channel images"),
    (["--preset", "huge"], "--preset must be one of"),
    (["--temperature", "0"], "--temperature must be > 0"),
    (["--profile", "foot-heavy"], "--profile must be one of head-heavy, uniform, encoder-only or a .json file"),
    (["--profile", "nowhere.json"], "nowhere.json: no such profile file"),
])
def test_bad_input_is_a_clear_error(tiny_base, tmp_path, extra, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(run_args(tiny_base, tmp_path / "bad", "--steps", "1", *extra))
    assert __import__("re").search(message, str(exit_info.value))


def test_unwritable_folder_and_existing_run_are_clear_errors(tiny_base, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SystemExit, match="cannot write to run folder"):
        main(run_args(tiny_base, blocker / "run", "--steps", "1"))
    out = tmp_path / "once"
    main(run_args(tiny_base, out, "--steps", "1", "--eval-samples", "1", "--grid-conditions", "1"))
    with pytest.raises(SystemExit, match="already holds checkpoints"):
        main(run_args(tiny_base, out, "--steps", "1"))


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tiny_base, tmp_path, monkeypatch):
    from bayes_bps.training import DeterministicObjective

    real_forward = DeterministicObjective.forward

    def poisoned(self, batch, step):
        loss = real_forward(self, batch, step)
        return loss * float("nan") if step == 3 else loss

    monkeypatch.setattr(DeterministicObjective, "forward", poisoned)
    out = tmp_path / "nan"
    with pytest.raises(SystemExit, match=r"at step 3.*last good checkpoint: .*step_000002"):
        main(run_args(tiny_base, out, "--deterministic", "--steps", "6", "--checkpoint-every", "2"))
    assert latest_checkpoint(out).name == "step_000002"


def _grey_folder(root, count, seed):
    """A folder dataset of single-channel targets and their one-channel sketches."""
    rng = torch.Generator().manual_seed(seed)
    (root / "source").mkdir(parents=True)
    (root / "target").mkdir()
    lines = []
    for i in range(count):
        pixels = (torch.rand(20, 20, generator=rng) > 0.7).to(torch.uint8) * 255
        Image.fromarray(pixels.numpy(), mode="L").save(root / "target" / f"{i}.png")
        Image.fromarray(255 - pixels.numpy(), mode="L").save(root / "source" / f"{i}.png")
        lines.append(json.dumps({"source": f"source/{i}.png", "target": f"target/{i}.png",
                                 "prompt": "a handwritten digit 1"}))
    (root / "prompt.json").write_text("\n".join(lines) + "\n")


def test_a_grey_folder_fits_a_grey_base_and_is_evaluated_on_a_held_out_folder(tiny_base, tmp_path):
    _grey_folder(tmp_path / "train", 6, seed=0)
    _grey_folder(tmp_path / "held_out", 4, seed=1)
    out = tmp_path / "run"
    main([*TINY, "--base", str(tiny_base), "--out", str(out), "--steps", "2", "--deterministic",
          "--domain", f"folder:{tmp_path / 'train'}", "--eval-domain", f"folder:{tmp_path / 'held_out'}"])
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation["conditions"] == f"held-out pairs of folder:{tmp_path / 'held_out'}"
    assert evaluation["steered"]["edge_f1"]["n"] == 3  # --eval-samples of the 4 held-out pairs

    unlabelled = tmp_path / "unlabelled"
    main([*TINY, "--base", str(tiny_base), "--out", str(unlabelled), "--steps", "2", "--deterministic",
          "--domain", f"folder:{tmp_path / 'train'}"])
    assert json.loads((unlabelled / "evaluation.json").read_text())["conditions"].startswith("train pairs (memorised")
    with pytest.raises(SystemExit):
        main([*TINY, "--base", str(tiny_base), "--out", str(tmp_path / "bad"), "--eval-domain", "shapes"])


def test_a_folder_run_is_sampled_and_exported_after_its_training_data_moved(tiny_base, tmp_path):
    _grey_folder(tmp_path / "train", 6, seed=0)
    out = tmp_path / "run"
    main([*TINY, "--base", str(tiny_base), "--out", str(out), "--steps", "2",
          "--domain", f"folder:{tmp_path / 'train'}"])
    condition = tmp_path / "sketch.png"
    Image.open(tmp_path / "train" / "source" / "0.png").resize((16, 16)).save(condition)
    (tmp_path / "train").rename(tmp_path / "moved")

    sample_main([str(out), "--condition", str(condition), "--caption", "a handwritten digit 1", "--draws", "2",
                 "--steps", "2", "--out", str(tmp_path / "samples")])
    assert torch.load(tmp_path / "samples" / "samples.pt")["draws"].shape == (2, 1, 1, 16, 16)
    sample_main([str(out), "--split", "train", "--n", "2", "--draws", "2", "--steps", "2",
                 "--out", str(tmp_path / "train-samples")])  # the train conditions come from pairs.pt
    assert export_main([str(out), str(tmp_path / "exported")]).joinpath("model_index.json").is_file()

    (out / "pairs.pt").unlink()  # the control: without the saved pairs the data are needed, and named
    with pytest.raises(SystemExit, match="train does not exist"):
        sample_main([str(out), "--condition", str(condition), "--caption", "a handwritten digit 1", "--steps", "2"])


def test_a_second_fit_into_a_locked_run_folder_fails_and_a_stale_lock_is_taken_over(tiny_base, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / LOCK_FILE).write_text(json.dumps({"host": socket.gethostname(), "pid": holder.pid}))
        with pytest.raises(SystemExit, match=f"in use by another fit \\(process {holder.pid}"):
            main(run_args(tiny_base, out, "--steps", "1", "--deterministic"))
    finally:
        holder.kill()
        holder.wait()
    main(run_args(tiny_base, out, "--steps", "1", "--deterministic"))  # the holder is gone: a stale lock
    assert (out / "evaluation.json").is_file() and not (out / LOCK_FILE).exists()


def test_checkpoints_total_limit_keeps_the_newest(tiny_base, tmp_path):
    out = tmp_path / "run"
    main(run_args(tiny_base, out, "--steps", "4", "--deterministic", "--checkpoint-every", "1",
                  "--checkpoints-total-limit", "3"))
    assert sorted(path.name for path in (out / "checkpoints").iterdir()) == [
        "step_000002", "step_000003", "step_000004"]


@pytest.mark.slow
def test_a_data_parallel_fit_resumes_with_every_ranks_own_draws(tiny_base, tmp_path):
    """torchrun starts two CPU processes (gloo); accelerate wraps the objective in DDP. Run for 2
    steps and resumed to 3, they end with the random states of an uninterrupted 3-step run on
    every rank (before, each rank restored rank 0's generator)."""
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def launch(out, *extra):
        command = [*torchrun, "-m", "bayes_bps.fit", *run_args(tiny_base, out, "--deterministic",
                                                              "--eval-samples", "1", "--grid-conditions", "1",
                                                              "--checkpoint-every", "1", *extra)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.count("wrote") == 2  # both ranks finished

    launch(tmp_path / "straight", "--steps", "3")
    assert (tmp_path / "straight" / "samples.png").is_file()
    launch(tmp_path / "resumed", "--steps", "2")
    launch(tmp_path / "resumed", "--steps", "3", "--resume")
    straight, resumed = (load_checkpoint_state(latest_checkpoint(tmp_path / name))["per_rank"]
                         for name in ("straight", "resumed"))
    assert not torch.equal(straight["generator"][0], straight["generator"][1])
    assert all(torch.equal(straight[name], resumed[name]) for name in straight)


@pytest.mark.slow
def test_the_same_seed_on_the_same_machine_gives_the_same_evaluation(tiny_base, tmp_path):
    runs = [tmp_path / "first", tmp_path / "again", tmp_path / "other-seed"]
    for out, seed in zip(runs, ("0", "0", "1")):
        main(run_args(tiny_base, out, "--steps", "3", "--seed", seed, "--no-sample-cache"))
    first, again, other = (json.loads((out / "evaluation.json").read_text()) for out in runs)
    assert first == again
    assert first["steered"]["edge_f1"]["per_image"] != other["steered"]["edge_f1"]["per_image"]


def test_tensorboard_logs_the_loss_kl_sigma_and_ports_and_validation_grids(tiny_base, tmp_path):
    out = tmp_path / "tracked"
    main(run_args(tiny_base, out, "--steps", "4", "--report-to", "tensorboard", "--log-every", "1",
                  "--validation-steps", "2"))
    assert sorted(path.name for path in (out / "validation").iterdir()) == ["step_000002.png", "step_000004.png"]
    events = list((out / "logs").rglob("events.out.tfevents.*"))
    assert events
    accumulator = EventAccumulator(str(events[0].parent)).Reload()
    tags = set(accumulator.Tags()["scalars"])
    assert {"-elbo per pair", "kl_per_pair", "temperature", "sigma/band_0", "fusion/mid", "slope/mid"} <= tags
    assert [event.step for event in accumulator.Scalars("kl_per_pair")] == [1, 2, 3, 4]
    assert accumulator.Scalars("kl_per_pair")[-1].value > 0  # the guide left the prior
    assert [event.step for event in accumulator.Images("validation")] == [2, 4]
