"""A small word-level caption encoder for the embedded bases.

Stable Diffusion conditions its UNet on CLIP hidden states. The embedded bases play the same
role with a learned token embedding, a position embedding and one transformer layer, so that
"a red circle and a blue square" binds each colour to its shape before cross-attention sees it.
The vocabulary lives in the config, so the tokenizer travels with `save_pretrained`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

PAD, UNKNOWN = "<pad>", "<unk>"


def caption_words(caption: str) -> list[str]:
    """Lower-case alphanumeric words: the tokens of the embedded caption encoder."""
    return re.findall(r"[a-z0-9]+", caption.lower())


def vocabulary_from(captions: Iterable[str]) -> list[str]:
    """The sorted set of words used by `captions`."""
    return sorted({word for caption in captions for word in caption_words(caption)})


class CaptionEncoder(ModelMixin, ConfigMixin):
    """Maps captions to `(batch, max_length, hidden_size)` states for UNet cross-attention.

    Captions longer than `max_length` words are truncated (as CLIP truncates at 77 tokens);
    unknown words map to `<unk>`. The empty caption is all padding: the unconditional input
    of classifier-free guidance.
    """

    @register_to_config
    def __init__(
        self,
        vocabulary: list[str],
        hidden_size: int = 64,
        max_length: int = 12,
        num_layers: int = 1,
        num_heads: int = 4,
    ):
        super().__init__()
        self.token_ids = {word: i for i, word in enumerate([PAD, UNKNOWN, *vocabulary])}
        self.token_embedding = nn.Embedding(len(self.token_ids), hidden_size)
        self.position_embedding = nn.Parameter(torch.randn(max_length, hidden_size) * 0.02)
        layer = nn.TransformerEncoderLayer(
            hidden_size, num_heads, dim_feedforward=4 * hidden_size, dropout=0.0,
            batch_first=True, norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(hidden_size)

    def tokenize(self, captions: list[str]) -> torch.Tensor:
        """Token ids `(batch, max_length)`, padded with `<pad>`."""
        max_length = self.config.max_length
        unknown = self.token_ids[UNKNOWN]
        ids = torch.full((len(captions), max_length), self.token_ids[PAD], dtype=torch.long)
        for row, caption in enumerate(captions):
            words = caption_words(caption)[:max_length]
            ids[row, : len(words)] = torch.tensor(
                [self.token_ids.get(word, unknown) for word in words], dtype=torch.long
            )
        return ids

    def forward(self, captions: list[str]) -> torch.Tensor:
        # 1. words -> ids on the model's device
        ids = self.tokenize(captions).to(self.position_embedding.device)
        # 2. token + position embeddings, then one layer of self-attention to bind words
        states = self.token_embedding(ids) + self.position_embedding
        return self.final_norm(self.encoder(states))
