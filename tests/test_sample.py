"""Posterior-predictive sampling from a fitted run: batching, shapes, the CLI, bad conditions."""

import re
from dataclasses import replace

import pytest
import torch

from bayes_bps.base import FrozenBase, sample_images, start_noise
from bayes_bps.bayes import HEAD_SITE, SteeringPriors, posterior_draws
from bayes_bps.fit import main as fit_main
from bayes_bps.sample import main
from bayes_bps.sampling import (
    coefficient_draws,
    load_condition,
    one_draw_per_image,
    posterior_predictive,
    steered_draws,
    steered_sample_images,
)
from bayes_bps.training import FittedRun, build_objective, load_run
from bayes_bps.utils.images import save_png
from bayes_bps.utils.seeding import seeded
from tests.test_fit import run_args

SAMPLING = {"steps": 2, "seed": 3, "progress": False}


@pytest.fixture(scope="module")
def run_dir(tiny_base, tmp_path_factory):
    """A 2-step Bayesian fit of a 16x16 digits base: 1-channel sketches, 16x16 images."""
    out = tmp_path_factory.mktemp("runs") / "bayes"
    fit_main(run_args(tiny_base, out, "--steps", "2", "--eval-samples", "1", "--grid-conditions", "1"))
    return out


@pytest.fixture(scope="module")
def run(run_dir):
    """The fit, loaded, with its port heads made large: two steps leave them near their zero
    start, so the draws would hardly differ and a mix-up of draws could go unseen."""
    run = load_run(run_dir)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in run.objective.model.adapter.heads.parameters():
            parameter.copy_(0.2 * torch.randn(parameter.shape, generator=generator))
    return run


def test_load_run_restores_the_checkpointed_objective(run_dir):
    from bayes_bps.training.checkpoint import latest_checkpoint, load_checkpoint_state

    loaded = load_run(run_dir)
    saved = load_checkpoint_state(latest_checkpoint(run_dir))["objective"]
    assert loaded.bayesian and len(loaded.pairs) == 6
    for name, value in loaded.objective.state_dict().items():
        assert torch.equal(value, saved[name]), name


@pytest.mark.parametrize("guidance_scale", [1.0, 2.0])
def test_batched_draws_equal_one_loop_per_draw(run, guidance_scale):
    model, conditions, captions = run.objective.model, run.pairs.conditions[:2], run.pairs.captions[:2]
    draws = coefficient_draws(run, 3, seed=0)
    batched = steered_draws(model, draws, conditions, captions, guidance_scale=guidance_scale, **SAMPLING)
    for k in range(3):
        draw = {site: value[k] for site, value in draws.items()}
        alone = steered_sample_images(run.base, model.adapter_with_heads(draw), model.weights_for(draw), conditions,
                                    captions, guidance_scale=guidance_scale, **SAMPLING)
        torch.testing.assert_close(batched[k], alone, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(batched[0], batched[1], atol=1e-3)  # the draws differ


def test_posterior_predictive_shapes_and_draws(run):
    conditions, captions = run.pairs.conditions[:2], run.pairs.captions[:2]
    draws = posterior_predictive(run, conditions, captions, 4, **SAMPLING)
    assert draws.shape == (4, 2, 1, 16, 16) and draws.abs().max() <= 1
    assert not torch.allclose(draws[0], draws[1], atol=1e-3)
    assert torch.equal(draws, posterior_predictive(run, conditions, captions, 4, **SAMPLING))  # seeded

    deterministic = replace(run.options, deterministic=True)
    fixed = FittedRun(deterministic, run.base, run.pairs, build_objective(deterministic, run.base, run.pairs))
    assert not fixed.bayesian
    assert posterior_predictive(fixed, conditions, captions, 4, **SAMPLING).shape == (1, 2, 1, 16, 16)


def test_bayesian_heads_draw_their_own_loop(run):
    options = replace(run.options, priors=SteeringPriors(head_scale=0.2))
    heads = FittedRun(options, run.base, run.pairs, build_objective(options, run.base, run.pairs))
    assert any(site.startswith("head.") for site in coefficient_draws(heads, 1, seed=0))
    draws = posterior_predictive(heads, run.pairs.conditions[:2], run.pairs.captions[:2], 3, **SAMPLING)
    assert draws.shape == (3, 2, 1, 16, 16) and not torch.allclose(draws[0], draws[1], atol=1e-3)


def test_one_draw_per_image_with_bayesian_heads_shares_the_heads_of_the_first_draw(run):
    """Each image gets its own coefficients; the heads are the first draw's for the whole call.
    The second image is its own coefficients under the first draw's heads, and not under its own
    draw's heads (the control)."""
    options = replace(run.options, priors=SteeringPriors(head_scale=0.2))
    model = FittedRun(options, run.base, run.pairs, build_objective(options, run.base, run.pairs)).objective
    conditions, captions = run.pairs.conditions[:2], run.pairs.captions[:2]
    sampling = {"steps": SAMPLING["steps"], "progress": False}
    images = one_draw_per_image(model, conditions, captions, seed=3, **sampling)
    with seeded(3):
        draws = posterior_draws(model.guide, 2)
    noise = start_noise(run.base, 2, torch.Generator().manual_seed(3))

    def second_image(heads_of: int) -> torch.Tensor:
        draw = {site: value[heads_of if site.startswith(HEAD_SITE) else 1][None] for site, value in draws.items()}
        return steered_draws(model.model, draw, conditions[1:], captions[1:], noise=noise[1:], **sampling)[0]

    torch.testing.assert_close(images[1:], second_image(heads_of=0), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(images[1:], second_image(heads_of=1), atol=1e-3)


def test_cli_writes_grids_maps_and_tensors(run_dir, tmp_path):
    out = tmp_path / "samples"
    main([str(run_dir), "--n", "2", "--draws", "3", "--steps", "2", "--out", str(out)])
    for i in range(2):
        for name in (f"grid_{i:03d}.png", f"mean_{i:03d}.png", f"sd_{i:03d}.png"):
            assert (out / name).is_file(), name
    saved = torch.load(out / "samples.pt", weights_only=True)
    assert saved["draws"].shape == (3, 2, 1, 16, 16) and saved["mean"].shape == (2, 1, 16, 16)
    assert saved["std"].shape == (2, 1, 16, 16) and saved["conditions"].shape == (2, 1, 16, 16)
    assert len(saved["captions"]) == 2 and saved["bayesian"]

    condition = tmp_path / "sketch.png"
    save_png(saved["conditions"][0], condition)
    assert torch.allclose(load_condition(condition, 1, 16), saved["conditions"][0], atol=1 / 255)
    main([str(run_dir), "--condition", str(condition), "--caption", "a handwritten digit 3",
          "--draws", "2", "--steps", "1", "--out", str(tmp_path / "own")])
    assert torch.load(tmp_path / "own" / "samples.pt", weights_only=True)["draws"].shape == (2, 1, 1, 16, 16)


@pytest.mark.parametrize("size, mode", [(8, "L"), (16, "RGB")])
def test_a_bad_condition_file_is_named_with_the_shape_expected(run_dir, tmp_path, size, mode):
    from PIL import Image

    path = tmp_path / f"bad_{mode}.png"
    Image.new(mode, (size, size)).save(path)
    with pytest.raises(SystemExit, match=rf"condition {re.escape(str(path))}.*takes \(1, 16, 16\)"):
        main([str(run_dir), "--condition", str(path), "--caption", "a handwritten digit 3", "--steps", "1"])


def test_run_only_options_need_a_run(capsys):
    with pytest.raises(SystemExit):
        main(["--draws", "4"])
    assert "--draws needs a RUN_DIR" in capsys.readouterr().err


@pytest.mark.parametrize("scheduler", ["ddim", "dpm++", "euler"])
def test_every_scheduler_samples_the_steered_posterior(run, scheduler):
    conditions, captions = run.pairs.conditions[:2], run.pairs.captions[:2]
    draws = posterior_predictive(run, conditions, captions, 2, scheduler=scheduler, steps=4, seed=3, progress=False)
    assert draws.shape == (2, 2, 1, 16, 16) and torch.isfinite(draws).all() and draws.abs().max() <= 1
    assert not torch.allclose(draws[0], draws[1], atol=1e-3)  # still steered, draw by draw


@pytest.mark.slow  # two 50-step samplings
def test_euler_and_ddim_take_the_same_deterministic_path():
    """Both are first-order solvers of the same probability-flow ODE on the same timesteps, so
    their samples agree; another seed is the control that must not."""
    base = FrozenBase.from_pretrained("digits")
    captions = ["a handwritten digit 3", "a handwritten digit 7"]
    ddim = sample_images(base, captions, steps=20, seed=1, progress=False)
    euler = sample_images(base, captions, steps=20, seed=1, progress=False, scheduler="euler")
    other = sample_images(base, captions, steps=20, seed=2, progress=False)
    torch.testing.assert_close(euler, ddim, atol=1e-4, rtol=0)
    assert (other - ddim).abs().mean() > 0.05
    with pytest.raises(ValueError, match="unknown scheduler 'plms'"):
        sample_images(base, captions, steps=2, scheduler="plms")
