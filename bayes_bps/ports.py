"""Ports of a frozen diffusers UNet: the places where BPS adds its steering residuals.

A *port* is one position of a `UNet2DConditionModel` whose hidden state the adapter steers:

    encoder port "down.i.j"  down_blocks[i].resnets[j]  (+ attentions[j] if the block has them)
    middle port  "mid"       mid_block: all its resnets and attentions
    decoder port "up.i.j"    up_blocks[i].resnets[j]    (+ attentions[j] if the block has them)

As in the official BPS code, the one residual of a port is added after *every* ResNet and
transformer of that position (SD1.5's mid block is Res, Attn, Res: three times), and never after a
downsampler or upsampler. The residuals are added by forward hooks, so the diffusers model itself
is never modified and is exactly the frozen prior once the context closes:

    ports = find_ports(unet)
    with steer(unet, adapter, condition, head_heavy_profile(ports)):
        eps = unet(x_t, t, text_embeddings).sample
"""

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
from torch import Tensor, nn

Stage = Literal["encoder", "middle", "decoder"]
SampleSize = int | tuple[int, int]
Scale = float | Tensor
# What `steer` needs from an adapter: (condition, time embedding, sample grid) -> residual per port.
Adapter = Callable[..., Mapping[str, Tensor]]


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


# ---------------------------------------------------------------------------------------------
# Fusion-weight profiles: one scale per port


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


# ---------------------------------------------------------------------------------------------
# Injection


def _add_residual(residuals: Mapping[str, Tensor], port: str, module: nn.Module, args: tuple, output):
    residual = residuals.get(port)
    if residual is None:
        return None  # port not steered: keep the module's output
    # Transformer2DModel returns a tuple (sample,) when called with return_dict=False, as diffusers blocks do.
    hidden = output[0] if isinstance(output, tuple) else output
    if not isinstance(hidden, Tensor):
        raise TypeError(f"port {port!r}: cannot add a residual to a {type(output).__name__} output")
    if residual.shape != hidden.shape:
        shapes = f"residual has shape {tuple(residual.shape)}, the UNet hidden state has {tuple(hidden.shape)}"
        raise ValueError(f"port {port!r}: {shapes}")
    hidden = hidden + residual.to(hidden.dtype)  # an fp32 adapter may steer an fp16 UNet
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


@contextmanager
def inject(unet: nn.Module, residuals: Mapping[str, Tensor]) -> Iterator[None]:
    """Add `residuals[port]` after every submodule of that port while the context is open.

    The mapping is read at every UNet call, so a caller may refill it between calls (this is how
    `steer` works); ports missing from it are left alone. The hooks are removed on exit, also when
    the body raises.
    """
    ports = find_ports(unet)
    unknown = set(residuals) - {p.name for p in ports}
    if unknown:
        raise ValueError(f"residuals for unknown ports {sorted(unknown)}; the UNet has {[p.name for p in ports]}")
    handles = []
    try:
        for port in ports:
            for module_name in port.modules:
                hook = partial(_add_residual, residuals, port.name)
                handles.append(unet.get_submodule(module_name).register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _check_scales(scales: Mapping[str, Scale], port_names: set[str]) -> None:
    if set(scales) != port_names:
        missing, unknown = sorted(port_names - set(scales)), sorted(set(scales) - port_names)
        raise ValueError(f"scales must give one value per port; missing {missing}, unknown {unknown}")


def _apply_scale(scale: Scale, residual: Tensor, port: str) -> Tensor:
    if isinstance(scale, Tensor) and scale.ndim == 1 and scale.shape[0] == residual.shape[0]:
        return scale.view(-1, 1, 1, 1).to(residual.dtype) * residual  # one scale per example
    if isinstance(scale, Tensor) and scale.ndim != 0:
        raise ValueError(
            f"scale of port {port!r} must be a scalar or have shape ({residual.shape[0]},); got {tuple(scale.shape)}"
        )
    return scale * residual


@contextmanager
def steer(
    unet: nn.Module,
    adapter: Adapter,
    condition: Tensor,
    scales: Mapping[str, Scale] | Callable[[Tensor], Mapping[str, Scale]],
) -> Iterator[None]:
    """Steer every UNet call inside the context with `adapter` and a fixed `condition`.

    A forward pre-hook on the UNet reads each call's `sample` and `timestep`, embeds the timestep
    with the frozen UNet's own `time_proj` + `time_embedding`, runs the adapter once and stashes
    scale * residual per port for the block hooks. So a whole DDIM loop, or a training step, is
    steered by wrapping it in one `with`; the adapter gets gradients, the UNet needs none.

    - The UNet batch may be a multiple of the condition batch: classifier-free guidance doubles
      the batch as [uncond; cond], so the condition is repeated the same way.
    - `timestep` may be a scalar or one value per example, as for the UNet itself.
    - `scales` gives one value per port (0 turns a port off): a float, a 0-d tensor, or a tensor
      with one value per UNet-batch example. It may also be a callable mapping the per-example
      timesteps to such a dict, for time-dependent gates.
    - The stash lives until the next call, so gradient checkpointing can recompute the blocks
      during backward; run backward before the next steered call.
    """
    port_names = {p.name for p in find_ports(unet)}
    if not callable(scales):
        _check_scales(scales, port_names)
    stash: dict[str, Tensor] = {}

    def compute_residuals(module: nn.Module, args: tuple, kwargs: dict) -> None:
        # 1. this call's sample and timestep, positional or keyword as in UNet2DConditionModel.forward
        sample = kwargs["sample"] if "sample" in kwargs else args[0]
        timestep = kwargs["timestep"] if "timestep" in kwargs else args[1]
        batch = sample.shape[0]
        # 2. the frozen time embedding: an input of the adapter, nothing in it is fitted; in the
        #    condition's dtype, since an fp32 adapter may steer an fp16 UNet
        with torch.no_grad():
            time_embedding = unet.time_embedding(unet.get_time_embed(sample, timestep)).to(condition.dtype)
        # 3. the condition repeated to the UNet batch (classifier-free guidance doubles it)
        if batch % condition.shape[0]:
            raise ValueError(
                f"the UNet batch ({batch}) is not a multiple of the condition batch ({condition.shape[0]})"
            )
        repeated = condition.repeat(batch // condition.shape[0], 1, 1, 1)
        # 4. run the adapter once and stash the scaled residuals for the block hooks
        residuals = adapter(repeated, time_embedding, sample_size=tuple(sample.shape[-2:]))
        if set(residuals) - port_names:
            raise ValueError(f"the adapter steers ports the UNet does not have: {sorted(set(residuals) - port_names)}")
        timesteps = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(batch)
        weights = scales(timesteps) if callable(scales) else scales
        _check_scales(weights, port_names)
        stash.clear()
        stash.update({name: _apply_scale(weights[name], r, name) for name, r in residuals.items()})

    handle = unet.register_forward_pre_hook(compute_residuals, with_kwargs=True)
    try:
        with inject(unet, stash):
            yield
    finally:
        handle.remove()
        stash.clear()
