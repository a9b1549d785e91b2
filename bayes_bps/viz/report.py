"""What a finished fit writes: the posterior of the coefficients, a sample grid, an evaluation.

- posterior.nc, posterior_summary.csv, fusion_forest.png, weight_profiles.png: the coefficients'
  posterior against their prior, and each port's weight w_k exp(s_k τ(t)) over t (Bayesian runs);
- posterior_profile.json: each port's posterior-mean w_k, which `fit --deterministic --profile`
  takes as fixed constants (Bayesian runs);
- samples.png: condition | unsteered base | steered with the posterior-mean coefficients |
  per-pixel posterior sd over K posterior draws (all from the same initial noise, so the sd
  is the spread the coefficients' uncertainty causes);
- evaluation.json: condition fidelity of unsteered, steered (posterior-mean coefficients) and,
  for Bayesian runs, posterior-predictive samples on held-out conditions (the test split; the
  training pairs for a folder dataset, which has none): each score's mean with its bootstrap
  interval, n and the per-image scores (runs with the same seed share conditions and noise, so
  two runs compare image by image).

`fit_and_report` is the whole of `python -m bayes_bps.fit`: the fit, then this report.
"""

from __future__ import annotations

import json
from pathlib import Path

import arviz as az
import numpy as np
import torch
from PIL import Image

from ..base.classifier import caption_agreement
from ..base.sample_cache import cached_sample_images, default_cache
from ..bayes import COEFFICIENTS, posterior_draws, prior_draws
from ..bayes.diagnostics import predictive_dataset, summary_table, to_inference_data
from ..bayes.likelihood import pointwise_log_likelihood
from ..experiments.analysis import fixed_batch, weight_curves
from ..metrics import condition_fidelity, mean_estimate
from ..sampling import one_draw_per_image, posterior_predictive, predictive_summary, steered_sample_images
from ..steering import find_ports
from ..training import FitOptions, FittedRun
from ..training.fitting import fit
from ..training.lock import run_folder_lock
from ..utils.files import write_text_atomic
from ..utils.grids import predictive_grid, save_png
from .figures import plot_fusion_forest, plot_weight_profiles

PROFILE_FILE = "posterior_profile.json"
SUMMARY_DRAWS = 1000  # guide draws behind the posterior summary (cheap: no UNet involved)
LOG_LIKELIHOOD_DRAWS = 64  # of those, the draws behind the pointwise log-likelihood (a UNet pass each)


def _svi_losses(run_dir: Path) -> list[float] | None:
    trace = run_dir / "loss.csv"
    if not trace.is_file():
        return None
    return [float(line.split(",")[1]) for line in trace.read_text().splitlines()[1:]]


def _posterior(run: FittedRun, run_dir: Path) -> tuple[dict, az.InferenceData]:
    """The summary and the two plots; return the posterior-mean coefficients and the
    InferenceData (posterior, prior, SVI trace, and the training pairs' log-likelihood at one
    fixed (t, ε) draw each, for `az.loo`)."""
    objective = run.objective
    model, guide = objective.model, objective.guide
    draws, prior = posterior_draws(guide, SUMMARY_DRAWS), prior_draws(model, SUMMARY_DRAWS)
    batch = fixed_batch(run, len(run.pairs), seed=run.options.seed)
    likelihood_draws = {name: value[:LOG_LIKELIHOOD_DRAWS] for name, value in draws.items()}
    idata = to_inference_data(draws, prior, model.port_names, ports=find_ports(model.base.unet),
                              svi_losses=_svi_losses(run_dir), loss_name=objective.loss_label,
                              log_likelihood=pointwise_log_likelihood(model, likelihood_draws, batch),
                              temperature=float(model.temperature), observed_noise=batch.noise)
    summary_table(idata).to_csv(run_dir / "posterior_summary.csv")
    write_text_atomic(run_dir / PROFILE_FILE, json.dumps(objective.posterior_profile(), indent=2) + "\n")
    save_png(plot_fusion_forest(idata), run_dir / "fusion_forest.png")
    timesteps = torch.arange(0, model.base.num_train_timesteps, 10)
    save_png(plot_weight_profiles(timesteps, weight_curves(model, draws, timesteps),
                                  weight_curves(model, prior, timesteps), model.port_names),
             run_dir / "weight_profiles.png")
    mean = {name: draws[name].mean(dim=0) for name in COEFFICIENTS}
    heads = {site: value for site, value in guide.median().items() if site not in COEFFICIENTS}
    return {**mean, **heads}, idata


def fidelity(run: FittedRun, images: torch.Tensor, conditions: torch.Tensor, captions: list[str]) -> dict[str, dict]:
    """The task's condition-fidelity scores (mean, bootstrap interval, n, and the per-image
    scores, for paired comparisons between runs that share conditions and noise), and the
    classifier's caption agreement against its chance level when the base knows the run's domain."""
    options, base = run.options, run.base
    scores = {name: {**mean_estimate(values).to_dict(), "per_image": values.tolist()}
              for name, values in condition_fidelity(options.task, images, conditions, captions).items()}
    if base.classifier is not None and base.domain == options.domain_name:
        agreement = caption_agreement(base.classifier, images.to(base.device), captions)
        scores["caption_agreement"] = {"value": agreement.pop("agreement"), **agreement}
    return scores


def write_report(run: FittedRun, run_dir: Path, progress: bool = True) -> dict:
    options, base, objective = run.options, run.base, run.objective
    sampling = {"steps": options.ddim_steps, "guidance_scale": options.guidance_scale,
                "seed": options.seed, "progress": progress, "scheduler": options.scheduler}
    if run.bayesian:
        model = objective.model
        coefficients, idata = _posterior(run, run_dir)
        adapter, weights = model.adapter_with_heads(coefficients), model.weights_for(coefficients)
    else:
        adapter, weights = objective.adapter, objective.weights

    # 1. held-out evaluation: unsteered and steered from the same noise; a Bayesian run also
    #    samples its posterior predictive (each image with its own draw of the coefficients)
    images, conditions, captions, split = run.held_out(options.eval_samples)
    unsteered = cached_sample_images(base, captions, cache=default_cache() if options.sample_cache else None,
                                   **sampling)
    steered = steered_sample_images(base, adapter, weights, conditions, captions, **sampling)
    evaluation = {"conditions": split, "task": options.task,
                  "unsteered": fidelity(run, unsteered, conditions, captions),
                  "steered": fidelity(run, steered, conditions, captions)}
    if run.bayesian:
        predictive = one_draw_per_image(objective, conditions, captions, **sampling)
        evaluation["posterior_predictive"] = fidelity(run, predictive, conditions, captions)
    evaluation["real"] = fidelity(run, images, conditions, captions)
    (run_dir / "evaluation.json").write_text(json.dumps(evaluation, indent=2) + "\n")

    # 2. the sample grid, with the posterior sd over K draws for Bayesian runs
    shown = min(options.grid_conditions, len(captions))
    columns = {"unsteered": unsteered[:shown].cpu(),
               "posterior mean" if run.bayesian else "steered": steered[:shown].cpu()}
    spread = None
    if run.bayesian:
        draws = posterior_predictive(run, conditions[:shown], captions[:shown], options.posterior_draws, **sampling)
        spread = predictive_summary(draws)[1].cpu()  # (shown, 1, H, W)
        # 3. posterior.nc, with each draw's fidelity on the grid's conditions as its posterior predictive
        per_draw = condition_fidelity(options.task, draws.flatten(0, 1), conditions[:shown].repeat(len(draws), 1, 1, 1),
                                      captions[:shown] * len(draws))
        idata.add_groups(posterior_predictive=predictive_dataset(
            {name: values.reshape(len(draws), shown) for name, values in per_draw.items()}))
        idata.to_netcdf(str(run_dir / "posterior.nc"))
    save_png(predictive_grid(conditions[:shown], captions[:shown], columns, spread), run_dir / "samples.png")
    return evaluation


def validation_grid(run: FittedRun, step: int) -> np.ndarray:
    """The first `--grid-conditions` held-out conditions under `--posterior-draws` draws (one for a
    deterministic run): condition | posterior mean | sd, written to RUN/validation/step_N.png;
    returns the picture for the tracker."""
    options = run.options
    _, conditions, captions, _ = run.held_out(options.grid_conditions)
    draws = posterior_predictive(run, conditions, captions, options.posterior_draws, steps=options.ddim_steps,
                                 seed=options.seed, guidance_scale=options.guidance_scale, progress=False,
                                 scheduler=options.scheduler)
    mean, sd = predictive_summary(draws)
    path = run.options.run_dir / "validation" / f"step_{step:06d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(predictive_grid(conditions, captions, {"posterior mean": mean.cpu()},
                             sd.cpu() if len(draws) > 1 else None), path)
    return np.asarray(Image.open(path).convert("RGB"))


def fit_and_report(options: FitOptions, resume: bool = False, explicit: set[str] = frozenset(),
                   progress: bool = True) -> Path:
    """Fit (or resume) a run, then write its report from the main process; returns the run folder.
    The run folder is locked throughout: a second fit into it fails at once."""
    with run_folder_lock(options.run_dir):
        run, accelerator = fit(options, resume, explicit, progress, validation=validation_grid)
        if accelerator.is_main_process:
            write_report(run, run.options.run_dir, progress=progress)
    return run.options.run_dir
