"""The steering network and where it steers: ports of a diffusers UNet, fusion-weight profiles,
the BPS adapter, and the hooks that add its residuals while a `steer` context is open."""

from .adapter import PRESETS, BPSAdapter, build_adapter
from .ports import Port, find_ports, format_port_table, port_table, position_counts
from .profiles import PROFILES, encoder_only_profile, head_heavy_profile, profile_weights, uniform_profile
from .steer import inject, steer, steered_noise

__all__ = ["PRESETS", "PROFILES", "BPSAdapter", "Port", "build_adapter", "encoder_only_profile", "find_ports",
           "format_port_table", "head_heavy_profile", "inject", "port_table", "position_counts", "profile_weights",
           "steer", "steered_noise", "uniform_profile"]
