"""Ports of a frozen diffusers UNet: the places where BPS adds its steering residuals.

A *port* is one position of a `UNet2DConditionModel` whose hidden state the adapter steers:

    encoder port "down.i.j"  down_blocks[i].resnets[j]  (+ attentions[j] if the block has them)
    middle port  "mid"       mid_block: all its resnets and attentions
    decoder port "up.i.j"    up_blocks[i].resnets[j]    (+ attentions[j] if the block has them)

As in the official BPS code, the one residual of a port is added after *every* ResNet and
transformer of that position (SD1.5's mid block is Res, Attn, Res: three times), and never after a
downsampler or upsampler (`steer.py` adds them). `port_table` lists every position of the official
numbering, steered or not.
"""

from dataclasses import dataclass
from typing import Literal

from torch import nn

Stage = Literal["encoder", "middle", "decoder"]
SampleSize = int | tuple[int, int]


@dataclass(frozen=True)
class Port:
    """One steerable position of the UNet."""

    name: str  # "down.0.1", "mid", "up.2.0"
    stage: Stage
    level: int  # resolution level: features are 2**level times smaller than the sample grid
    channels: int
    modules: tuple[str, ...]  # qualified submodule names; the residual is added after each of them

    @property
    def times_added(self) -> int:
        return len(self.modules)

    def spatial_size(self, sample_size: SampleSize) -> tuple[int, int]:
        """(height, width) of this port's features for a UNet sample of `sample_size`."""
        return _spatial_size(sample_size, self.level, self.name)


def _spatial_size(sample_size: SampleSize, level: int, position: str) -> tuple[int, int]:
    height, width = (sample_size, sample_size) if isinstance(sample_size, int) else sample_size
    factor = 2**level
    if height % factor or width % factor:
        raise ValueError(f"sample size {height}x{width} is not divisible by {factor}, the downsampling at {position!r}")
    return height // factor, width // factor


def _position_ports(block: nn.Module, prefix: str, name: str, stage: Stage, level: int) -> list[Port]:
    # Position j of a down/up block is resnets[j] followed by attentions[j] when the block has attention.
    attentions = getattr(block, "attentions", None) or []
    ports = []
    for j, resnet in enumerate(block.resnets):
        modules = [f"{prefix}.resnets.{j}"]
        if j < len(attentions) and attentions[j] is not None:
            modules.append(f"{prefix}.attentions.{j}")
        ports.append(Port(f"{name}.{j}", stage, level, resnet.out_channels, tuple(modules)))
    return ports


def find_ports(unet: nn.Module) -> list[Port]:
    """All ports of a diffusers UNet2DConditionModel, in forward order: encoder, middle, decoder.

    Levels are counted from the modules, not assumed: each downsampler goes one level down and
    each upsampler one level up, so any block layout (with or without attention) works.
    """
    ports, level = [], 0
    for i, block in enumerate(unet.down_blocks):
        ports += _position_ports(block, f"down_blocks.{i}", f"down.{i}", "encoder", level)
        level += getattr(block, "downsamplers", None) is not None
    if unet.mid_block is not None:
        mid = unet.mid_block
        modules = [f"mid_block.resnets.{j}" for j in range(len(mid.resnets))]
        attentions = getattr(mid, "attentions", None) or []
        modules += [f"mid_block.attentions.{j}" for j, attn in enumerate(attentions) if attn is not None]
        ports.append(Port("mid", "middle", level, mid.resnets[-1].out_channels, tuple(modules)))
    for i, block in enumerate(unet.up_blocks):
        ports += _position_ports(block, f"up_blocks.{i}", f"up.{i}", "decoder", level)
        level -= getattr(block, "upsamplers", None) is not None
    return ports


# ---------------------------------------------------------------------------------------------
# The port table: every position in the official sense, steered or not


@dataclass(frozen=True)
class PositionRow:
    name: str
    stage: Stage
    level: int
    channels: int
    height: int
    width: int
    times_added: int  # 0 for a position that is never steered


def port_table(unet: nn.Module, sample_size: SampleSize | None = None) -> list[PositionRow]:
    """Every position of the official BPS/ControlNet numbering, in forward order.

    The encoder positions are conv_in, each resnet position and each downsampler (the skip
    features the decoder consumes: 12 for SD1.5); conv_in and the downsamplers get no residual,
    so they appear with times_added == 0. Then the middle, then one position per decoder resnet.
    `sample_size` defaults to the UNet's configured sample size.
    """
    sample_size = unet.config.sample_size if sample_size is None else sample_size
    if sample_size is None:
        raise ValueError("the UNet config has no sample_size; pass sample_size explicitly")
    ports = find_ports(unet)

    def row(name: str, stage: Stage, level: int, channels: int, times_added: int) -> PositionRow:
        return PositionRow(name, stage, level, channels, *_spatial_size(sample_size, level, name), times_added)

    rows = [row("conv_in", "encoder", 0, unet.conv_in.out_channels, 0)]
    for i, block in enumerate(unet.down_blocks):
        block_ports = [p for p in ports if p.name.startswith(f"down.{i}.")]
        rows += [row(p.name, p.stage, p.level, p.channels, p.times_added) for p in block_ports]
        if getattr(block, "downsamplers", None) is not None:
            rows.append(row(f"down.{i}.downsample", "encoder", block_ports[-1].level + 1, block_ports[-1].channels, 0))
    rows += [row(p.name, p.stage, p.level, p.channels, p.times_added) for p in ports if p.stage != "encoder"]
    return rows


def position_counts(rows: list[PositionRow]) -> dict[str, int]:
    """Positions per stage and how many of them are steered; SD1.5: 12 (8 active), 1, 12."""
    counts = {}
    for stage in ("encoder", "middle", "decoder"):
        counts[stage] = sum(r.stage == stage for r in rows)
        counts[f"{stage}_active"] = sum(r.stage == stage and r.times_added > 0 for r in rows)
    return counts


def format_port_table(rows: list[PositionRow]) -> str:
    lines = [f"{'position':<18} {'stage':<8} {'level':>5} {'channels':>8} {'size':>9} {'added':>5}"]
    for r in rows:
        size = f"{r.height}x{r.width}"
        lines.append(f"{r.name:<18} {r.stage:<8} {r.level:>5} {r.channels:>8} {size:>9} {r.times_added:>5}")
    return "\n".join(lines)
