"""Posterior diagnostics: the steering coefficients as ArviZ InferenceData, tables and plots.

Each coefficient (fusion, slope) has one value per port, so it gets the named
dimension `port`; given the UNet's `Port`s, the port dimension also carries its resolution
`level` and `stage` (encoder, middle, decoder) as coordinates. An InferenceData built here has

    posterior      guide draws (one chain) or NUTS draws (several chains): (chain, draw, port)
    prior          draws from the priors, one chain, so ArviZ compares prior and posterior directly
    sample_stats   per-draw sampler statistics, e.g. NUTS's `diverging`: (chain, draw)
    svi_trace      the optimiser's loss per step: `loss` over dim `step`, the objective's name in
                   its attrs. Not in `sample_stats`, whose variables ArviZ reads as one value per
                   posterior draw; an optimisation step is not a draw.

`tempered_loo` is PSIS-LOO for the tempered posterior, so `az.compare` can weigh two fits
(two temperatures, two profiles) on the same pairs. `compare_posteriors` sets SVI against a
NUTS reference (see nuts.py) coefficient by coefficient; `viz.figures.plot_fusion_forest`
draws the fusion coefficients' posterior against their prior.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import xarray as xr

with warnings.catch_warnings():  # arviz 0.23 announces its coming refactor on import
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az

from arviz.stats.stats_utils import ELPDData
from scipy.special import logsumexp

from ..steering import Port
from .priors import COEFFICIENTS

HDI_PROB = 0.94  # ArviZ's default credible mass
Draws = Mapping[str, torch.Tensor]


def _as_chains(draws: Draws) -> dict[str, np.ndarray]:
    """(draw, port) draws become one chain; (chain, draw, port) draws stay as they are."""
    arrays = {}
    for name in COEFFICIENTS:
        values = draws[name].detach().cpu().numpy()
        if values.ndim not in (2, 3):
            raise ValueError(f"{name} draws have shape {values.shape}; expected (draw, port) or "
                             "(chain, draw, port)")
        arrays[name] = values[None] if values.ndim == 2 else values
    return arrays


def _port_coords(port_names: list[str], ports: Sequence[Port] | None) -> dict:
    coords = {"port": list(port_names)}
    if ports is None:
        return coords
    if [p.name for p in ports] != list(port_names):
        raise ValueError(f"ports {[p.name for p in ports]} do not match the draws' ports {list(port_names)}; "
                         "pass find_ports(unet) of the UNet the model steers")
    return {**coords, "level": ("port", [p.level for p in ports]), "stage": ("port", [p.stage for p in ports])}


def _coefficient_dataset(draws: Draws, port_names: list[str], ports: Sequence[Port] | None) -> xr.Dataset:
    coords = _port_coords(port_names, ports)
    dataset = az.dict_to_dataset(_as_chains(draws), coords={"port": coords.pop("port")},
                                 dims={name: ["port"] for name in COEFFICIENTS})
    return dataset.assign_coords(coords)


def to_inference_data(posterior: Draws, prior: Draws | None, port_names: list[str], *,
                      ports: Sequence[Port] | None = None,
                      sample_stats: Mapping[str, torch.Tensor] | None = None,
                      svi_losses: Sequence[float] | None = None,
                      loss_name: str = "loss",
                      log_likelihood: torch.Tensor | None = None,
                      temperature: float | None = None,
                      observed_noise: torch.Tensor | None = None) -> az.InferenceData:
    """InferenceData of the coefficients: posterior, and optionally prior, sample_stats, svi_trace,
    log_likelihood and observed_data (`predictive_dataset` makes a posterior_predictive group).

    `ports` (`steering.find_ports(unet)`) adds `level` and `stage` coordinates to the port dim;
    `sample_stats` values are (chain, draw); `svi_losses` is the loss per optimisation step,
    described by `loss_name` (e.g. a trainer's `loss_label`). `log_likelihood` (draws, examples)
    is each training example's tempered log-likelihood λ log p (`likelihood.pointwise_log_likelihood`)
    at `temperature` λ, kept in the group's attrs for `tempered_loo`; `observed_noise` is the ε
    it was evaluated at."""
    groups = {"posterior": _coefficient_dataset(posterior, port_names, ports)}
    if log_likelihood is not None:
        if temperature is None:
            raise ValueError("a tempered log_likelihood needs its temperature")
        groups["log_likelihood"] = az.dict_to_dataset({"noise": log_likelihood.cpu().numpy()[None]},
                                                      dims={"noise": ["example"]},
                                                      attrs={"temperature": float(temperature)})
    if observed_noise is not None:
        groups["observed_data"] = az.dict_to_dataset(
            {"noise": observed_noise.cpu().numpy()}, default_dims=[],
            dims={"noise": ["example", *(f"noise_dim_{i}" for i in range(observed_noise.dim() - 1))]})
    if prior is not None:
        groups["prior"] = _coefficient_dataset(prior, port_names, ports)
    if sample_stats is not None:
        groups["sample_stats"] = az.dict_to_dataset(
            {name: torch.as_tensor(value).cpu().numpy() for name, value in sample_stats.items()})
    if svi_losses is not None:
        losses = np.asarray(svi_losses, dtype=float)
        groups["svi_trace"] = xr.Dataset({"loss": ("step", losses)}, coords={"step": np.arange(len(losses))},
                                         attrs={"loss_name": loss_name})
    return az.InferenceData(**groups)


def predictive_dataset(scores: Mapping[str, torch.Tensor]) -> xr.Dataset:
    """A posterior_predictive group: each fidelity score (draws, conditions) of one
    posterior-predictive image per draw and held-out condition."""
    return az.dict_to_dataset({name: values.cpu().numpy()[None] for name, values in scores.items()},
                              dims={name: ["condition"] for name in scores})


def tempered_loo(idata: az.InferenceData) -> ELPDData:
    """PSIS-LOO of a tempered posterior π ∝ p(θ) Π_i p(y_i | θ)^λ, pointwise, for `az.compare`.

    Leaving y_i out divides π by p(y_i | θ)^λ, so the importance ratios are exp(−λ log p(y_i | θ)):
    the stored tempered terms. What is averaged under them is the predictive density p(y_i | θ)
    itself, since the held-out example is scored by the model, not by its tempered weight.
    `az.loo` uses one array for both, which is right only at λ = 1 (where this equals it).
    Guide draws are independent, so the relative efficiency is 1."""
    group = idata.log_likelihood
    temperature = group.attrs.get("temperature")
    if temperature is None:
        raise ValueError("the log_likelihood group has no temperature attribute; write it with "
                         "to_inference_data(..., temperature=λ)")
    tempered = group["noise"].stack(__sample__=("chain", "draw")).transpose("example", "__sample__").values
    log_weights, pareto_k = az.psislw(-tempered, reff=1.0)
    raw = tempered / temperature
    loo_i = logsumexp(log_weights + raw, axis=1)
    samples = tempered.shape[1]
    lppd = (logsumexp(raw, axis=1) - np.log(samples)).sum()
    good_k = min(1 - 1 / np.log10(samples), 0.7)
    coords = {"example": group["example"].values}
    return ELPDData(
        data=[loo_i.sum(), (len(loo_i) * np.var(loo_i)) ** 0.5, lppd - loo_i.sum(), samples, len(loo_i),
              bool(np.any(pareto_k > good_k)), xr.DataArray(loo_i, coords, dims=["example"], name="loo_i"),
              xr.DataArray(pareto_k, coords, dims=["example"], name="pareto_shape"), "log", good_k],
        index=["elpd_loo", "se", "p_loo", "n_samples", "n_data_points", "warning", "loo_i", "pareto_k", "scale",
               "good_k"])


def summary_table(idata: az.InferenceData):
    """Mean, sd and HDI of every coefficient (a pandas DataFrame)."""
    return az.summary(idata, var_names=list(COEFFICIENTS), kind="stats", hdi_prob=HDI_PROB)


def _unconstrained(name: str, values: torch.Tensor) -> tuple[str, np.ndarray]:
    """A coefficient in the guide's space, where prior and guide are Normal: log w for fusion."""
    values = values.detach().cpu().double()
    return ("log_fusion", values.log().numpy()) if name == "fusion" else (name, values.numpy())


def compare_posteriors(svi_draws: Draws, nuts_draws: Draws, port_names: list[str]) -> pd.DataFrame:
    """SVI against NUTS, one row per (coefficient, port), in the guide's unconstrained space.

    `svi_draws` are (draw, port) guide draws; `nuts_draws` are (chain, draw, port). Columns:
    mean and sd of each; R-hat and bulk ESS of NUTS (rank-based, so the same for w and log w);
    `discrepancy_sd` = |mean_svi − mean_nuts| / sd_nuts and `sd_ratio` = sd_svi / sd_nuts;
    `mcse_sd`, the Monte Carlo standard error of the NUTS mean in NUTS sd (1 / √ESS of the mean):
    a discrepancy a few times this size is the reference's own noise, not SVI's error."""
    reference = _coefficient_dataset(nuts_draws, port_names, None)
    if reference.sizes["chain"] < 2:
        raise ValueError("R-hat needs at least two NUTS chains")
    r_hat, ess = az.rhat(reference), az.ess(reference, method="bulk")
    tables = []
    for name in COEFFICIENTS:
        label, svi = _unconstrained(name, svi_draws[name])
        _, chains = _unconstrained(name, nuts_draws[name])
        nuts = chains.reshape(-1, chains.shape[-1])
        ess_mean = az.ess(az.convert_to_dataset({name: chains}), method="mean")[name].values
        table = pd.DataFrame({"coefficient": label, "port": port_names,
                              "svi_mean": svi.mean(0), "svi_sd": svi.std(0, ddof=1),
                              "nuts_mean": nuts.mean(0), "nuts_sd": nuts.std(0, ddof=1),
                              "r_hat": r_hat[name].values, "ess_bulk": ess[name].values,
                              "mcse_sd": 1 / np.sqrt(ess_mean)})
        tables.append(table)
    table = pd.concat(tables).set_index(["coefficient", "port"])
    table["discrepancy_sd"] = (table.svi_mean - table.nuts_mean).abs() / table.nuts_sd
    table["sd_ratio"] = table.svi_sd / table.nuts_sd
    return table


def comparison_summary(table: pd.DataFrame) -> str:
    """One line: how far SVI is from NUTS at worst and typically, and how well NUTS mixed."""
    worst = table.discrepancy_sd.idxmax()
    return (f"SVI vs NUTS over {len(table)} coefficients: |mean difference| max "
            f"{table.discrepancy_sd.max():.2f} NUTS sd ({worst[0]}[{worst[1]}]), median "
            f"{table.discrepancy_sd.median():.2f}; sd ratio SVI/NUTS {table.sd_ratio.min():.2f} to "
            f"{table.sd_ratio.max():.2f}; NUTS R-hat max {table.r_hat.max():.3f}, bulk ESS min "
            f"{table.ess_bulk.min():.0f}, Monte Carlo error of its means up to {table.mcse_sd.max():.2f} sd "
            f"({table.mcse_sd[worst]:.2f} at the worst)")
