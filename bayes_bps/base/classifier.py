"""The domain classifier that ships with each embedded base.

It reads what a caption says from an image: which coloured shapes are present (multi-label),
or which digit is drawn (single-label). Labels are caption phrases ("red circle", "digit 3"),
so the same model scores a generated image against the caption it was drawn for. Its
penultimate features give the *domain* Fréchet distance of the later metrics.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..data import DOMAINS


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.GroupNorm(8, out_channels),
        nn.SiLU(),
        nn.Conv2d(out_channels, out_channels, 3, padding=1),
        nn.GroupNorm(8, out_channels),
        nn.SiLU(),
    )


class DomainClassifier(ModelMixin, ConfigMixin):
    """A small CNN over images in [-1, 1]; global max pooling makes it resolution-free."""

    @register_to_config
    def __init__(self, in_channels: int, labels: list[str], multi_label: bool, width: int = 32):
        super().__init__()
        self.body = nn.Sequential(
            _conv_block(in_channels, width), nn.AvgPool2d(2),
            _conv_block(width, 2 * width), nn.AvgPool2d(2),
            _conv_block(2 * width, 4 * width),
        )
        self.head = nn.Linear(4 * width, len(labels))
        self._patterns = [re.compile(rf"\b{re.escape(label)}\b") for label in labels]

    @classmethod
    def for_domain(cls, domain: str, in_channels: int, **kwargs) -> DomainClassifier:
        """A fresh classifier of a built-in domain's caption labels (see `data.domains`)."""
        registered = DOMAINS.get(domain)
        if registered is None or registered.caption_labels is None:
            known = [name for name, d in DOMAINS.items() if d.caption_labels is not None]
            raise ValueError(f"no domain classifier is defined for domain {domain!r}; "
                             f"built-in domains with one are {known}")
        return cls(in_channels, registered.caption_labels(), registered.multi_label, **kwargs)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate features `(batch, 4 * width)`; max pooling keeps 'is it anywhere'."""
        return self.body(images).amax(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))

    def caption_targets(self, captions: list[str]) -> torch.Tensor:
        """Multi-hot `(batch, labels)` or class indices `(batch,)` read from the captions."""
        hits = torch.tensor([[bool(p.search(c.lower())) for p in self._patterns] for c in captions])
        if self.config.multi_label:
            return hits.float()
        counts = hits.sum(dim=1)
        if not torch.all(counts == 1):
            bad = captions[int(torch.nonzero(counts != 1)[0])]
            raise ValueError(f"caption {bad!r} names {int(counts.max())} or no labels of "
                             f"{self.config.labels}; a single-label classifier needs exactly one")
        return hits.float().argmax(dim=1)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Multi-hot predictions (sigmoid > 1/2) or class indices, like `caption_targets`."""
        logits = self(images)
        return (logits > 0).float() if self.config.multi_label else logits.argmax(dim=1)

    def loss(self, images: torch.Tensor, captions: list[str]) -> torch.Tensor:
        logits = self(images)
        targets = self.caption_targets(captions).to(logits.device)
        if self.config.multi_label:
            return F.binary_cross_entropy_with_logits(logits, targets)
        return F.cross_entropy(logits, targets)


def caption_agreement(
    classifier: DomainClassifier, images: torch.Tensor, captions: list[str], seed: int = 0,
    permutations: int = 20,
) -> dict[str, float]:
    """How well images show their captions, each score with its chance level.

    `agreement`: the fraction of images whose predicted labels equal the caption's exactly.
    `label_f1`: the mean F1 between predicted and captioned label sets (partial credit when
    one of three objects is wrong; equal to agreement for single-label domains). Chance is
    each score against shuffled captions: what images that ignore their captions but look
    like the domain would get.
    """
    predictions = classifier.predict(images).cpu()
    targets = classifier.caption_targets(captions)
    if not classifier.config.multi_label:  # class indices -> one-hot sets
        predictions, targets = (F.one_hot(x.long(), len(classifier.config.labels)).float()
                                for x in (predictions, targets))

    def scores(order: torch.Tensor) -> torch.Tensor:
        wanted = targets[order]
        exact = (predictions == wanted).all(dim=1).float().mean()
        overlap = 2 * (predictions * wanted).sum(dim=1)
        sizes = predictions.sum(dim=1) + wanted.sum(dim=1)
        f1 = torch.where(sizes > 0, overlap / sizes.clamp(min=1), 1.0).mean()
        return torch.stack([exact, f1])

    generator = torch.Generator().manual_seed(seed)
    chance = torch.stack([scores(torch.randperm(len(captions), generator=generator))
                          for _ in range(permutations)]).mean(dim=0)
    observed = scores(torch.arange(len(captions)))
    return {"agreement": observed[0].item(), "chance": chance[0].item(),
            "label_f1": observed[1].item(), "label_f1_chance": chance[1].item(), "n": len(captions)}


def train_classifier(
    classifier: DomainClassifier, dataset: Dataset, steps: int, batch_size: int = 64,
    lr: float = 2e-3, seed: int = 0, noise_std: float = 0.1,
) -> list[float]:
    """Fit on real images; light Gaussian noise makes it robust to imperfect samples."""
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator,
                        drop_last=True)
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    losses: list[float] = []
    classifier.train()
    with tqdm(total=steps, desc="classifier") as progress:
        while len(losses) < steps:
            for images, _, captions in loader:
                noisy = images + noise_std * torch.randn(images.shape, generator=generator)
                loss = classifier.loss(noisy, list(captions))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                losses.append(loss.item())
                progress.update()
                progress.set_postfix(loss=f"{loss.item():.3f}")
                if len(losses) == steps:
                    break
    classifier.eval()
    return losses
