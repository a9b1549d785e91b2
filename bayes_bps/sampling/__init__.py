"""Sampling fitted models: steered DDIM, the posterior predictive, and samples on disk."""

from .files import held_out_captions, load_condition, write_samples
from .predictive import (
    coefficient_draws,
    one_draw_per_image,
    posterior_predictive,
    predictive_summary,
    steered_draws,
)
from .steered import steered_sample_images

__all__ = ["coefficient_draws", "held_out_captions", "load_condition", "one_draw_per_image",
           "posterior_predictive", "predictive_summary", "steered_sample_images", "steered_draws", "write_samples"]
