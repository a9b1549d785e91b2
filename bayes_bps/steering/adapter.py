"""The BPS steering network: (condition, t) -> one residual per port of the frozen UNet.

It sees only the condition and the frozen UNet's time embedding, never the noisy sample or the
text, as in the official code. Its shape mirrors the UNet it steers:

    condition --pixel-unshuffle--> sample grid --stem--> encoder --> middle --> decoder
                                                           |   skips (concat)    ^
    encoder: per level, one FiLM ResBlock per UNet encoder port; downsample between levels
    middle:  two FiLM ResBlocks
    decoder: one time-free ResBlock per UNet decoder port, on [h, skip]; upsample between levels
    heads:   one zero-initialised 3x3 conv per port, to that port's UNet channels

A *scale-free* adapter (`scale_free=True`, for the Bayesian model) has randomly initialised heads
whose outputs are divided by their root mean square per example: each residual has unit RMS,
a pattern without a magnitude, and the magnitude is entirely the port weight that `steer`
multiplies it by. No parameter of the network can then rescale a port, so the port weights are
identified (see `bayes/model.py`).

With the `official-sd15` preset on the SD1.5 UNet this is the official network, block for block.
Its live parameters number 672.09M; the official module reports 692.37M because it also allocates
20.28M of zero convs at conv_in and the three downsamplers, whose outputs BPS discards (they feed
only its optional ControlNet mode), and 14 scalar fusion weights, which here are `steer`'s port weights.
"""

import math
from collections.abc import Collection, Iterator
from itertools import islice

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn

from ..base import FrozenBase
from .ports import find_ports

# Adapter width per level = UNet width * multiplier (at least MIN_WIDTH channels).
PRESETS: dict[str, float] = {
    "official-sd15": 1.0,  # the official network: the UNet's own widths
    "lite": 1 / 8,  # about 4% of SD1.5's parameters; the 3x3 heads dominate
    "tiny": 1 / 32,  # for tests
}
MIN_WIDTH = 8  # GroupNorm and FiLM need a few channels to be meaningful
RMS_EPS = 1e-6  # a head's output is divided by sqrt(mean square + eps): no division by zero


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class FiLMResBlock(nn.Module):
    """Encoder/middle ResBlock: GroupNorm-SiLU-conv, FiLM scale-shift from the time embedding,
    GroupNorm-SiLU-conv (zero-initialised, as in the official ResBlock), plus a skip."""

    def __init__(self, in_channels: int, out_channels: int, time_embed_dim: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.film = nn.Linear(time_embed_dim, 2 * out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels)
        self.conv2 = _zero(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor, time_embedding: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(F.silu(time_embedding))[:, :, None, None].chunk(2, dim=1)
        h = self.conv2(F.silu(self.norm2(h) * (1 + scale) + shift))
        return self.skip(x) + h


class SkipResBlock(nn.Module):
    """Decoder block, no time input: skip(x) + conv(SiLU(GroupNorm(x))) with a single 3x3 conv,
    zero-initialised as in the official ResZeroBlock so each block starts as its 1x1 skip."""

    def __init__(self, in_channels: int, out_channels: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, in_channels)
        self.conv = _zero(nn.Conv2d(in_channels, out_channels, 3, padding=1))
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.skip(x) + self.conv(F.silu(self.norm(x)))


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class BPSAdapter(ModelMixin, ConfigMixin):
    """The BPS network for one UNet layout. Build it with `BPSAdapter.from_unet`.

    Args:
        ports: the UNet's ports in forward order, each {"name", "stage", "level", "channels"}.
        widths: adapter channels per resolution level.
        time_embed_dim: width of the frozen UNet's time embedding.
        condition_channels: channels of the condition image.
        unshuffle_factor: condition pixels per sample-grid cell along each side (8 for a latent
            SD base, 1 for a pixel-space base).
        norm_num_groups: GroupNorm groups; must divide every width.
        scale_free: heads with unit-RMS outputs (random init) instead of zero-initialised heads.
    """

    @register_to_config
    def __init__(
        self,
        ports: list[dict],
        widths: list[int],
        time_embed_dim: int,
        condition_channels: int = 3,
        unshuffle_factor: int = 8,
        norm_num_groups: int = 32,
        scale_free: bool = False,
    ):
        super().__init__()
        num_levels = len(widths)
        levels = sorted({p["level"] for p in ports})
        if set(levels) - set(range(num_levels)):
            raise ValueError(f"ports at levels {levels}, but widths for only {num_levels} levels")
        by_stage = {stage: [p for p in ports if p["stage"] == stage] for stage in ("encoder", "middle", "decoder")}

        def names_at(stage: str, level: int) -> list[str]:
            return [p["name"] for p in by_stage[stage] if p["level"] == level]

        # Port names grouped per level, in the order the forward pass reaches them.
        self.encoder_ports = [names_at("encoder", level) for level in range(num_levels)]
        self.decoder_ports = [names_at("decoder", level) for level in reversed(range(num_levels))]
        if any(not names for names in self.encoder_ports + self.decoder_ports):
            raise ValueError(f"every level 0..{num_levels - 1} needs encoder and decoder ports; got {ports}")
        if len(by_stage["middle"]) != 1:
            raise ValueError(f"BPSAdapter needs exactly one middle port; got {len(by_stage['middle'])}")
        self.middle_port = by_stage["middle"][0]["name"]
        # The decoder consumes one skip per encoder position: the stem, each block, each downsampler.
        num_skips = 1 + len(by_stage["encoder"]) + num_levels - 1
        if num_skips != len(by_stage["decoder"]):
            raise ValueError(f"{len(by_stage['decoder'])} decoder ports cannot consume the {num_skips} encoder skips")

        # 1-2. condition onto the sample grid, stem conv
        self.unshuffle = nn.PixelUnshuffle(unshuffle_factor)
        self.stem = nn.Conv2d(condition_channels * unshuffle_factor**2, widths[0], 3, padding=1)
        skip_channels, channels = [widths[0]], widths[0]

        # 3. encoder: one time-aware ResBlock per encoder port, downsampling between levels
        self.encoder = nn.ModuleList()
        self.downsamplers = nn.ModuleList()
        for level, names in enumerate(self.encoder_ports):
            for _ in names:
                self.encoder.append(FiLMResBlock(channels, widths[level], time_embed_dim, norm_num_groups))
                channels = widths[level]
                skip_channels.append(channels)
            if level < num_levels - 1:
                self.downsamplers.append(nn.Conv2d(channels, channels, 3, stride=2, padding=1))
                skip_channels.append(channels)

        # 4. middle: two time-aware ResBlocks
        self.middle = nn.ModuleList(FiLMResBlock(channels, channels, time_embed_dim, norm_num_groups) for _ in range(2))

        # 5. decoder: one time-free ResBlock per decoder port on [h, skip], upsampling between levels
        self.decoder = nn.ModuleList()
        self.upsamplers = nn.ModuleList()
        for i, names in enumerate(self.decoder_ports):
            level = num_levels - 1 - i
            for _ in names:
                self.decoder.append(SkipResBlock(channels + skip_channels.pop(), widths[level], norm_num_groups))
                channels = widths[level]
            if level > 0:
                self.upsamplers.append(Upsample(channels))

        # 6. one zero-initialised head per port, to the port's UNet channels
        level_of = {p["name"]: p["level"] for p in ports}
        unet_channels = {p["name"]: p["channels"] for p in ports}
        self.port_names = [name for names in self.encoder_ports for name in names] + [self.middle_port]
        self.port_names += [name for names in self.decoder_ports for name in names]
        heads = (nn.Conv2d(widths[level_of[name]], unet_channels[name], 3, padding=1) for name in self.port_names)
        self.heads = nn.ModuleList(head if scale_free else _zero(head) for head in heads)

    @classmethod
    def from_unet(
        cls, unet: nn.Module, preset: str = "lite", condition_channels: int = 3, unshuffle_factor: int = 8,
        scale_free: bool = False,
    ) -> "BPSAdapter":
        """An adapter shaped for `unet`: its ports, its levels, its time embedding width.

        The preset scales the UNet's widths (see PRESETS); GroupNorm uses the largest group count
        up to 32 that divides every width (32 for SD widths, as the official GroupNorm32).
        """
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
        ports = find_ports(unet)
        unet_widths = {p.level: p.channels for p in ports if p.stage == "encoder"}  # levels 0..L-1
        widths = [max(MIN_WIDTH, round(unet_widths[level] * PRESETS[preset])) for level in sorted(unet_widths)]
        return cls(
            ports=[{"name": p.name, "stage": p.stage, "level": p.level, "channels": p.channels} for p in ports],
            widths=widths,
            time_embed_dim=unet.time_embedding.linear_2.out_features,
            condition_channels=condition_channels,
            unshuffle_factor=unshuffle_factor,
            norm_num_groups=math.gcd(32, *widths),
            scale_free=scale_free,
        )

    def _check_condition(self, condition: Tensor, sample_size: tuple[int, int] | None) -> None:
        channels, factor = self.config.condition_channels, self.config.unshuffle_factor
        if condition.ndim != 4 or condition.shape[1] != channels:
            raise ValueError(f"condition must have shape (batch, {channels}, H, W); got {tuple(condition.shape)}")
        height, width = condition.shape[-2:]
        if sample_size is not None and (height, width) != (sample_size[0] * factor, sample_size[1] * factor):
            raise ValueError(
                f"condition of size {height}x{width} does not unshuffle to the UNet sample grid "
                f"{sample_size[0]}x{sample_size[1]}: expected {sample_size[0] * factor}x{sample_size[1] * factor} "
                f"(unshuffle factor {factor})"
            )
        multiple = factor * 2 ** (len(self.config.widths) - 1)
        if height % multiple or width % multiple:
            raise ValueError(
                f"condition of size {height}x{width}: expected a multiple of {multiple} on each side "
                f"(unshuffle factor {factor} times {len(self.config.widths) - 1} halvings)"
            )

    def _features(self, condition: Tensor, time_embedding: Tensor) -> Iterator[tuple[str, Tensor]]:
        """(port name, the adapter's features there), in port order and computed lazily: a
        caller that stops early runs none of the blocks after the last port it takes."""
        # 1-2. condition onto the sample grid, stem conv
        h = self.stem(self.unshuffle(condition))
        skips = [h]

        # 3. encoder
        blocks = iter(self.encoder)
        for level, names in enumerate(self.encoder_ports):
            for name in names:
                h = next(blocks)(h, time_embedding)
                skips.append(h)
                yield name, h
            if level < len(self.downsamplers):
                h = self.downsamplers[level](h)
                skips.append(h)

        # 4. middle
        for block in self.middle:
            h = block(h, time_embedding)
        yield self.middle_port, h

        # 5. decoder
        blocks = iter(self.decoder)
        for i, names in enumerate(self.decoder_ports):
            for name in names:
                h = next(blocks)(torch.cat([h, skips.pop()], dim=1))
                yield name, h
            if i < len(self.upsamplers):
                h = self.upsamplers[i](h)

    def forward(
        self, condition: Tensor, time_embedding: Tensor, sample_size: tuple[int, int] | None = None,
        ports: Collection[str] | None = None,
    ) -> dict[str, Tensor]:
        """Residual per port name, at the port's UNet channels and resolution.

        `time_embedding` is the frozen UNet's embedding of t, one row per condition. When
        `sample_size` (the UNet sample's height, width) is given, the condition must unshuffle to it.
        `ports` (default: all) prunes the others: their heads are not run, nor any block after the
        last kept port in port order (the decoder's full-resolution tail, when it is pruned).
        """
        self._check_condition(condition, sample_size)
        kept = set(self.port_names if ports is None else ports)
        if kept - set(self.port_names):
            raise ValueError(f"unknown ports {sorted(kept - set(self.port_names))}; the adapter has {self.port_names}")
        needed = max((i + 1 for i, name in enumerate(self.port_names) if name in kept), default=0)
        features = dict(islice(self._features(condition, time_embedding), needed))

        # 6. heads to each kept port's UNet channels: zero-initialised, or unit RMS per example
        residuals = {name: head(features[name]) for name, head in zip(self.port_names, self.heads) if name in kept}
        if self.config.scale_free:
            residuals = {name: r * r.square().mean(dim=(1, 2, 3), keepdim=True).add(RMS_EPS).rsqrt()
                         for name, r in residuals.items()}
        return residuals


def build_adapter(base: FrozenBase, preset: str, condition_channels: int, scale_free: bool = False) -> BPSAdapter:
    """A fresh adapter shaped for the base's UNet, on its device; conditions unshuffle by the VAE factor."""
    return BPSAdapter.from_unet(base.unet, preset=preset, condition_channels=condition_channels,
                                unshuffle_factor=base.latent_factor, scale_free=scale_free).to(base.device)
