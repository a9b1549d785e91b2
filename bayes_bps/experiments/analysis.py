"""The numbers behind the paper figures and the notebooks, computed from a fitted run.

- `coefficient_samples`: guide and prior draws of the coefficients, for profiles and bands;
- `weight_curves`: w_k exp(s_k τ(t)) per draw, port and timestep;
- `posterior_shift`: how far each coefficient's posterior moved from its prior (sd units, KL);
- `large_to_small`: base samples for one caption against posterior-predictive samples for one
  sketch, with the fraction that satisfies the sketch and two measures of diversity;
- `predictive_samples` and `uncertainty_vs_error`: K posterior draws per held-out sketch, and
  whether the per-pixel posterior sd is larger where the samples miss their sketch.

Edge F1 is the sketch task's fidelity score, so the last two need a sketch run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import torch
from scipy import stats
from torch import Tensor

from ..base import NoisyBatch, sample_images
from ..bayes import COEFFICIENTS, BayesianSteering, port_weights, posterior_draws, prior_draws
from ..metrics import domain_features, edge_f1
from ..sampling import one_draw_per_image, posterior_predictive, predictive_summary
from ..training import FittedRun
from ..utils.seeding import seeded

BAND = (0.03, 0.5, 0.97)  # median and a 94 % equal-tailed band (ArviZ's default credible mass)
SATISFIED_F1 = 0.5  # a sample "satisfies" its sketch when its edge F1 is above this


def _check_bayesian(run: FittedRun) -> None:
    if not run.bayesian:
        raise ValueError(f"{run.options.run_dir} is a deterministic run: it has no posterior to analyse")


def _check_sketch(run: FittedRun) -> None:
    if run.options.task != "sketch":
        raise ValueError(f"edge F1 scores sketches; {run.options.run_dir} is a {run.options.task!r} run")


def coefficient_samples(run: FittedRun, num_draws: int = 1000, seed: int = 0) -> tuple[dict, dict]:
    """(posterior, prior) draws of every coefficient, each (num_draws, ports), from `seed`."""
    _check_bayesian(run)
    with seeded(seed):
        return posterior_draws(run.objective.guide, num_draws), prior_draws(run.objective.model, num_draws)


def band(draws: Tensor) -> Tensor:
    """The `BAND` quantiles over the leading (draw) dimension: (3, ...)."""
    return torch.quantile(draws.double(), torch.tensor(BAND, dtype=torch.double), dim=0)


def weight_curves(model: BayesianSteering, draws: dict[str, Tensor], timesteps: Tensor) -> Tensor:
    """w_k exp(s_k τ(t)) for each draw, timestep and port: (draws, timesteps, ports), through the
    model's own `port_weights` (without the reference scale: in units of the official constants)."""
    curves = []
    for fusion, slope in zip(draws["fusion"], draws["slope"]):
        weights = port_weights(fusion, slope, timesteps, model.base.num_train_timesteps, model.port_names)
        curves.append(torch.stack(list(weights.values()), dim=1))
    return torch.stack(curves)


def posterior_shift(run: FittedRun) -> pd.DataFrame:
    """Per coefficient and port, in the guide's space where prior and posterior are both Normal
    (log w for the fusion coefficients): the shift of the mean in prior sd, the sd ratio, and
    KL(posterior ‖ prior) in nats of the marginal (a full-rank guide's correlations add to the
    joint KL, `guide.total_kl()`). A posterior still on its prior reads shift 0, ratio 1, KL 0."""
    _check_bayesian(run)
    model, guide = run.objective.model, run.objective.guide
    divergences, rows = guide.kl_to_prior(), []
    for site in COEFFICIENTS:
        prior_mean, prior_sd = model.unconstrained_prior(site)
        prior_mean = torch.as_tensor(prior_mean).expand(len(model.port_names))
        mean, sd = (value.detach() for value in guide.marginal(site))
        kl = divergences[site]
        label = "log_fusion" if site == "fusion" else site
        for k, port in enumerate(model.port_names):
            rows.append({"coefficient": label, "port": port, "prior_mean": float(prior_mean[k]),
                         "prior_sd": prior_sd, "posterior_mean": float(mean[k]), "posterior_sd": float(sd[k]),
                         "shift_sd": float((mean[k] - prior_mean[k]) / prior_sd),
                         "sd_ratio": float(sd[k] / prior_sd), "kl_nats": float(kl[k])})
    return pd.DataFrame(rows).set_index(["coefficient", "port"])


def space_statistics(run: FittedRun, images: Tensor, sketch: Tensor) -> dict[str, float]:
    """How many `images` satisfy `sketch` (edge F1 > 1/2), and how diverse they are: the mean
    pairwise distance of the domain classifier's features, and the entropy (bits) of its
    predicted labels (label sets for multi-label domains) across the images."""
    _check_sketch(run)
    scores = edge_f1(images, sketch.expand(len(images), -1, -1, -1))
    result = {"n": len(images), "mean_edge_f1": scores.mean().item(),
              "fraction_satisfied": (scores > SATISFIED_F1).float().mean().item()}
    classifier = run.base.classifier
    if classifier is None:
        return result
    features = torch.from_numpy(domain_features(classifier)(images.to(classifier.device)))
    predictions = classifier.predict(images.to(classifier.device)).cpu().reshape(len(images), -1)
    _, counts = torch.unique(predictions, dim=0, return_counts=True)
    frequencies = counts.double() / counts.sum()
    return {**result, "feature_spread": torch.pdist(features).mean().item(),
            "label_entropy_bits": float(-(frequencies * frequencies.log2()).sum())}


@dataclass
class LargeToSmall:
    """Base samples for a caption (the large space) and steered samples for one of its sketches."""

    sketch: Tensor  # (1, H, W) in [0, 1]
    caption: str
    base: Tensor  # (K, C, H, W) in [-1, 1]
    steered: Tensor  # (K, C, H, W) in [-1, 1]
    statistics: pd.DataFrame  # one row per space


def large_to_small(run: FittedRun, num_samples: int = 16, *, index: int = 0, steps: int = 50,
                   seed: int = 0) -> LargeToSmall:
    """`num_samples` base samples for held-out caption `index`, and as many posterior-predictive
    samples for its sketch: each with its own initial noise and its own posterior draw of the
    coefficients. Sample i of both starts from the same x_T, so they differ by steering alone."""
    _check_bayesian(run)
    _, conditions, captions, _ = run.held_out(index + 1)
    sketch, caption = conditions[index], captions[index]
    prompts, sampling = [caption] * num_samples, {"steps": steps, "seed": seed, "progress": False}
    base = sample_images(run.base, prompts, **sampling).cpu()
    sketches = sketch[None].expand(num_samples, -1, -1, -1)
    steered = one_draw_per_image(run.objective, sketches, prompts, **sampling).cpu()
    statistics = pd.DataFrame([
        {"space": "base, caption only (large)", **space_statistics(run, base, sketch)},
        {"space": "posterior predictive, sketch (small)", **space_statistics(run, steered, sketch)},
    ]).set_index("space")
    return LargeToSmall(sketch, caption, base, steered, statistics)


@dataclass
class Predictive:
    """K posterior-predictive draws for B held-out sketches, all K from each sketch's one x_T."""

    conditions: Tensor  # (B, 1, H, W)
    captions: list[str]
    draws: Tensor  # (K, B, C, H, W) in [-1, 1]

    @property
    def summary(self) -> tuple[Tensor, Tensor]:
        """Posterior-mean images (B, C, H, W) and per-pixel posterior sd (B, 1, H, W)."""
        return predictive_summary(self.draws)


def predictive_samples(run: FittedRun, count: int = 4, num_draws: int = 8, *, steps: int = 50,
                       seed: int = 0) -> Predictive:
    """`num_draws` posterior-predictive samples for each of the first `count` held-out sketches."""
    _check_bayesian(run)
    _, conditions, captions, _ = run.held_out(count)
    draws = posterior_predictive(run, conditions, captions, num_draws, steps=steps, seed=seed, progress=False)
    return Predictive(conditions, captions, draws.cpu())


def uncertainty_vs_error(run: FittedRun, predictive: Predictive) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per sketch: the mean per-pixel posterior sd and the error 1 − edge F1 (mean over draws);
    and their Pearson and Spearman correlations across sketches (nan with fewer than 3)."""
    _check_sketch(run)
    draws, conditions = predictive.draws, predictive.conditions
    scores = torch.stack([edge_f1(draw, conditions) for draw in draws])  # (K, B)
    table = pd.DataFrame({"caption": predictive.captions,
                          "mean_posterior_sd": predictive.summary[1].mean(dim=(1, 2, 3)).numpy(),
                          "error": (1 - scores.mean(dim=0)).numpy()})
    correlations = {"n": len(table), "pearson": math.nan, "spearman": math.nan}
    if len(table) >= 3 and table.mean_posterior_sd.std() > 0 and table.error.std() > 0:
        correlations["pearson"] = float(stats.pearsonr(table.mean_posterior_sd, table.error)[0])
        correlations["spearman"] = float(stats.spearmanr(table.mean_posterior_sd, table.error)[0])
    return table, correlations


def fixed_batch(run: FittedRun, size: int, seed: int = 0) -> NoisyBatch:
    """A fixed batch of (x_t, t, ε) from the run's training pairs, for NUTS and SVI on one batch."""
    generator = torch.Generator().manual_seed(seed)
    pairs = run.pairs
    return pairs.noisy_batch(run.base, pairs.draw_indices(size, generator), generator)
