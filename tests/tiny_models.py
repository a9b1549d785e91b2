"""Tiny diffusers models shared by the tests: channels 32/64, a 16x16 sample grid."""

import torch
from diffusers import UNet2DConditionModel


def tiny_unet(layers_per_block: int = 1) -> UNet2DConditionModel:
    """Two levels: cross-attention at the high resolution, none at the low one (like SD's level 3)."""
    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=16,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=layers_per_block,
        norm_num_groups=8,
        cross_attention_dim=32,
        attention_head_dim=8,
    ).eval()


def unet_inputs(batch: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    sample = torch.randn(batch, 4, 16, 16, generator=generator)
    timesteps = torch.randint(0, 1000, (batch,), generator=generator)
    text = torch.randn(batch, 5, 32, generator=generator)
    return sample, timesteps, text


def no_hooks(unet: torch.nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in unet.modules())


def tiny_pixel_base(channels: int = 3, vocabulary: tuple[str, ...] = ("a", "red", "circle")):
    """A pixel-space FrozenBase over 16x16 images, built in memory (no pretraining)."""
    from diffusers import DDPMScheduler

    from bayes_bps.base import FrozenBase
    from bayes_bps.base.caption_encoder import CaptionEncoder

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=channels, out_channels=channels, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), layers_per_block=1,
        norm_num_groups=8, cross_attention_dim=32, attention_head_dim=8)
    text_encoder = CaptionEncoder(list(vocabulary), hidden_size=32, num_heads=2)
    return FrozenBase(unet, DDPMScheduler(beta_schedule="squaredcos_cap_v2"), text_encoder)
