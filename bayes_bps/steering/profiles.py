"""Fusion-weight profiles: one weight per port, the constants that scale the adapter's residuals.

The official BPS constants are the head-heavy profile; the Bayesian model centres its prior on
a profile, and the deterministic recipe uses one as fixed weights. Besides the named profiles,
a JSON file {port name: weight} is one, e.g. a Bayesian run's posterior-mean profile
(`posterior_profile.json`), so a deterministic refit can take the posterior's constants.
"""

import json
import math
from collections.abc import Callable
from pathlib import Path

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


def read_profile(path: Path, ports: list[Port]) -> dict[str, float]:
    """A profile from a JSON file {port name: weight ≥ 0} naming exactly the UNet's ports;
    ValueError naming the file and the problem."""
    try:
        weights = json.loads(Path(path).read_text())
    except FileNotFoundError as error:
        raise ValueError(f"{path}: no such profile file") from error
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not JSON ({error})") from error
    if not isinstance(weights, dict):
        raise ValueError(f"{path}: a profile is a JSON object {{port name: weight}}")
    names = [port.name for port in ports]
    missing, unknown = [n for n in names if n not in weights], sorted(set(weights) - set(names))
    if missing or unknown:
        raise ValueError(f"{path}: the profile must name exactly this UNet's ports; missing {missing}, "
                         f"unknown {unknown}")
    bad = {name: value for name, value in weights.items()
           if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0}
    if bad:
        raise ValueError(f"{path}: weights must be finite numbers ≥ 0; got {bad}")
    return {name: float(weights[name]) for name in names}


def profile_weights(unet: nn.Module, profile: str) -> dict[str, float]:
    """The named profile's weight for every port of `unet`, or a JSON file's (`read_profile`)."""
    if profile.endswith(".json"):
        return read_profile(Path(profile), find_ports(unet))
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}, or a .json file "
                         "{port: weight}")
    return PROFILES[profile](find_ports(unet))
