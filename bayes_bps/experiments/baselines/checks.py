"""Input checks shared by the baselines' steering contexts."""

from __future__ import annotations

from torch import Tensor


def check_conditions(method: str, conditions: Tensor, channels: int, grid: tuple[int, ...], factor: int) -> None:
    """Conditions must have the module's channels and `factor` times the UNet's sample grid."""
    if conditions.ndim != 4 or conditions.shape[1] != channels:
        raise ValueError(f"{method}: conditions of shape {tuple(conditions.shape)} do not have the "
                         f"(batch, {channels}, height, width) shape the module was built for")
    expected = tuple(factor * side for side in grid)
    if tuple(conditions.shape[-2:]) != expected:
        raise ValueError(f"{method}: conditions are {tuple(conditions.shape[-2:])} pixels, but a UNet sample of "
                         f"{tuple(grid)} cells needs {expected} (factor {factor})")


def refuse_existing(kwargs: dict, names: tuple[str, ...], method: str) -> None:
    """One steering at a time: the UNet call must not already carry these residual arguments."""
    given = [name for name in names if kwargs.get(name) is not None]
    if given:
        raise ValueError(f"{method}: the UNet call already passes {given}; one steering at a time")
