"""Posterior diagnostics: the steering coefficients as ArviZ InferenceData, tables and plots.

Each coefficient (fusion, gate_bias, gate_slope) has one value per port, so it gets the named
dimension `port`. The posterior group holds draws from the guide (one chain); the prior group
holds draws from the priors, so prior and posterior can be compared with ArviZ directly.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

with warnings.catch_warnings():  # arviz 0.23 announces its coming refactor on import
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az  # noqa: E402

from .bayes import COEFFICIENTS  # noqa: E402

HDI_PROB = 0.94  # ArviZ's default credible mass


def _as_chain(draws: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {name: draws[name].detach().cpu().numpy()[None] for name in COEFFICIENTS}


def to_inference_data(posterior: dict[str, torch.Tensor], prior: dict[str, torch.Tensor],
                      port_names: list[str]) -> az.InferenceData:
    """InferenceData with `posterior` and `prior` groups, dims (chain, draw, port)."""
    dims = {name: ["port"] for name in COEFFICIENTS}
    return az.from_dict(posterior=_as_chain(posterior), prior=_as_chain(prior),
                        coords={"port": port_names}, dims=dims)


def summary_table(idata: az.InferenceData):
    """Mean, sd and HDI of every coefficient (a pandas DataFrame)."""
    return az.summary(idata, var_names=list(COEFFICIENTS), kind="stats", hdi_prob=HDI_PROB)


def plot_fusion_forest(idata: az.InferenceData, path: Path) -> Path:
    """Forest plot of the fusion coefficients: posterior against the head-heavy prior."""
    prior_as_draws = az.InferenceData(posterior=idata.prior)
    axes = az.plot_forest([idata, prior_as_draws], model_names=["posterior", "prior"],
                          var_names=["fusion"], combined=True, hdi_prob=HDI_PROB,
                          figsize=(6, 0.35 * idata.posterior.sizes["port"] + 1.5))
    axis = axes[0]
    axis.set_xscale("log")
    axis.set_xlabel(f"fusion coefficient w (log scale); {HDI_PROB:.0%} HDI")
    axis.set_title("fusion coefficients: posterior vs head-heavy prior")
    figure = axis.get_figure()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)
