"""`BPSPipeline`: export a fitted run, load it with diffusers' machinery, sample without data."""

import json

import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

from bayes_bps import BPSBasePipeline, BPSPipeline, data
from bayes_bps.base import EMBEDDED_BASES, FrozenBase, resolve_base, sample_images
from bayes_bps.export import main as export_main
from bayes_bps.fit import main as fit_main
from bayes_bps.sample import main as sample_main
from bayes_bps.sampling import steered_sample_images
from bayes_bps.training import load_run
from bayes_bps.utils.images import save_png as save_image_png

TINY = ["--domain", "digits", "--n-train", "6", "--preset", "tiny", "--batch-size", "2", "--posterior-draws", "2",
        "--grid-conditions", "2", "--eval-samples", "2", "--ddim-steps", "2", "--steps", "3"]


@pytest.fixture(scope="module")
def exported(tiny_base, tmp_path_factory):
    """A Bayesian (each guide family) and a deterministic tiny run, each exported."""
    root = tmp_path_factory.mktemp("pipelines")
    folders = {}
    for kind, extra in (("bayesian", []), ("bayesian-full-rank", ["--guide", "full-rank"]),
                        ("bayesian-flow", ["--guide", "flow"]), ("deterministic", ["--deterministic"])):
        fit_main([*TINY, "--base", str(tiny_base), "--out", str(root / f"run-{kind}"), *extra])
        folders[kind] = (root / f"run-{kind}", export_main([str(root / f"run-{kind}"), str(root / kind)]))
    return folders


def _conditions(run_dir, count=2):
    run = load_run(run_dir, device="cpu")
    return run, run.pairs.conditions[:count], run.pairs.captions[:count]


@pytest.mark.parametrize("kind", ["bayesian", "bayesian-full-rank", "bayesian-flow"])
def test_the_exported_posterior_is_the_guides(exported, kind):
    run_dir, folder = exported[kind]
    run, _, _ = _conditions(run_dir)
    pipe = BPSPipeline.from_pretrained(folder)
    guide, model = run.objective.guide, run.objective.model
    for site in ("fusion", "slope"):
        location, scale = guide.marginal(site)
        torch.testing.assert_close(getattr(pipe.posterior, f"{site}_loc"), location.detach())
        torch.testing.assert_close(getattr(pipe.posterior, f"{site}_scale"), scale.detach())
    torch.testing.assert_close(pipe.posterior.correlation_cholesky, guide.correlation_cholesky())
    bank = guide.exported_draws()  # a flow's: the export resamples them
    assert (len(pipe.posterior.bank) == 0) if bank is None else torch.equal(pipe.posterior.bank, bank)
    draws = pipe.posterior.draws(3, torch.Generator().manual_seed(0))
    timesteps = torch.tensor([0, 400, 999] * 4)  # 3 draws x 2 conditions, doubled by guidance
    exported_weights = pipe.posterior.port_weights(draws, 2)(timesteps)
    model_weights = model.weights_per_image(draws, 2)(timesteps)
    assert all(torch.allclose(exported_weights[name], model_weights[name]) for name in model_weights)
    assert (README := folder / "README.md").is_file() and "edge_f1" in README.read_text()


def test_the_pipeline_samples_without_training_data_and_matches_the_package(exported, monkeypatch):
    run_dir, folder = exported["deterministic"]
    run, conditions, captions = _conditions(run_dir)
    expected = steered_sample_images(run.base, run.objective.adapter, run.objective.weights, conditions, captions,
                                     steps=3, seed=7, progress=False)

    def no_data(*args, **kwargs):
        raise AssertionError("the pipeline read a dataset")

    monkeypatch.setattr(data, "make_dataset", no_data)
    pipe = BPSPipeline.from_pretrained(folder)
    generator = torch.Generator().manual_seed(11)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=torch.Generator().manual_seed(11)))
    assert seed != 7
    out = pipe(captions, image=conditions, generator=generator, num_inference_steps=3, output_type="pt",
               progress=False)
    assert out.images.shape == (2, 1, 16, 16) and out.sd is None
    again = steered_sample_images(run.base, run.objective.adapter, run.objective.weights, conditions, captions,
                                  steps=3, seed=seed, progress=False)
    torch.testing.assert_close(out.images, ((again + 1) / 2).clamp(0, 1))
    assert not torch.allclose(out.images, ((expected + 1) / 2).clamp(0, 1))  # control: another seed


@pytest.mark.parametrize("scheduler", [DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler])
def test_posterior_draws_with_any_scheduler(exported, scheduler):
    run_dir, folder = exported["bayesian"]
    _, conditions, captions = _conditions(run_dir)
    pipe = BPSPipeline.from_pretrained(folder)
    pipe.scheduler = scheduler.from_config(pipe.scheduler.config)
    out = pipe(captions, image=conditions, num_posterior_draws=3, generator=torch.Generator().manual_seed(0),
               num_inference_steps=3, progress=False)
    assert len(out.images) == 6 and out.images[0].size == (16, 16)
    assert out.mean.shape == out.sd.shape == (2, 1, 16, 16) and torch.isfinite(out.sd).all()
    assert out.sd.max() > 0  # the draws differ
    single = pipe(captions[0], image=conditions[0], posterior="mean", num_inference_steps=3, output_type="pt",
                  progress=False)
    assert single.images.shape == (1, 1, 16, 16) and single.sd is None


@pytest.mark.parametrize("name", EMBEDDED_BASES)
def test_an_embedded_base_loads_as_the_pipeline_its_model_index_names(name):
    path = resolve_base(name)
    assert json.loads((path / "model_index.json").read_text())["_class_name"] == BPSBasePipeline.__name__
    pipe = BPSBasePipeline.from_pretrained(path)
    assert pipe.classifier is not None and type(pipe.scheduler).__name__ == "DDPMScheduler"  # the training schedule
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)  # what the package samples with
    captions = ["a handwritten digit 3" if name == "digits" else "a red circle"]
    generator = torch.Generator().manual_seed(4)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=torch.Generator().manual_seed(4)))
    out = pipe(captions, num_inference_steps=3, generator=generator, output_type="pt", progress=False)
    expected = sample_images(FrozenBase.from_pretrained(name), captions, steps=3, seed=seed, progress=False)
    torch.testing.assert_close(out.images, ((expected + 1) / 2).clamp(0, 1))


def test_the_sample_command_samples_an_exported_folder_without_data(exported, tmp_path, monkeypatch):
    run_dir, folder = exported["bayesian"]
    _, conditions, _ = _conditions(run_dir, count=1)
    condition = tmp_path / "sketch.png"
    save_image_png(conditions[0], condition)
    monkeypatch.setattr(data, "make_dataset", lambda *a, **k: pytest.fail("the command read a dataset"))
    sample_main([str(folder), "--condition", str(condition), "--caption", "a handwritten digit 3", "--draws", "3",
                 "--steps", "2", "--out", str(tmp_path / "samples")])
    saved = torch.load(tmp_path / "samples" / "samples.pt")
    assert saved["draws"].shape == (3, 1, 1, 16, 16) and saved["bayesian"]
    assert (tmp_path / "samples" / "grid_000.png").is_file()
    with pytest.raises(SystemExit):  # an exported folder holds no conditions of its own
        sample_main([str(folder), "--steps", "2"])
