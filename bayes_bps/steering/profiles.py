"""Fusion-weight profiles: one weight per port, the constants that scale the adapter's residuals.

The official BPS constants are the head-heavy profile; the Bayesian model centres its prior on
a profile, and the deterministic recipe uses one as fixed weights.
"""

from collections.abc import Callable

from torch import nn

from .ports import Port, find_ports


def _num_levels(ports: list[Port]) -> int:
    return 1 + max(p.level for p in ports if p.stage == "encoder")


def head_heavy_profile(ports: list[Port]) -> dict[str, float]:
    """The official "head-heavy, foot-light" fusion weights, generalised to any depth.

    With L resolution levels, encoder level l gets 2**(L - l), the middle gets the top encoder
    weight 2**L, and the decoder gets 1. For SD1.5 (L = 4) this is the official 16, 8, 4, 2 from the
    highest resolution down, 16 for the middle, 1 for the decoder: the encoder doubles its weight
    per level towards the input, where the condition's spatial detail lives.
    """
    num_levels = _num_levels(ports)

    def weight(port: Port) -> float:
        if port.stage == "encoder":
            return 2.0 ** (num_levels - port.level)
        return 2.0**num_levels if port.stage == "middle" else 1.0

    return {p.name: weight(p) for p in ports}


def uniform_profile(ports: list[Port]) -> dict[str, float]:
    return {p.name: 1.0 for p in ports}


def encoder_only_profile(ports: list[Port]) -> dict[str, float]:
    """T2I-Adapter-like steering: encoder ports 1, middle and decoder 0."""
    return {p.name: float(p.stage == "encoder") for p in ports}


PROFILES: dict[str, Callable[[list[Port]], dict[str, float]]] = {
    "head-heavy": head_heavy_profile,
    "uniform": uniform_profile,
    "encoder-only": encoder_only_profile,
}




def profile_weights(unet: nn.Module, profile: str) -> dict[str, float]:
    """The named profile's weight for every port of `unet`."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    return PROFILES[profile](find_ports(unet))
