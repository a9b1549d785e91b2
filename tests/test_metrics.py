"""Condition-fidelity metrics against known answers."""

import torch

from bayes_bps.data import make_dataset
from bayes_bps.metrics import edge_f1


def test_edge_f1_is_high_for_the_true_image_and_low_otherwise():
    dataset = make_dataset("shapes", "sketch", length=16)
    images = torch.stack([dataset[i][0] for i in range(16)])
    sketches = torch.stack([dataset[i][1] for i in range(16)])
    own = edge_f1(images, sketches)
    shuffled = edge_f1(images, sketches.roll(1, dims=0))
    blank = edge_f1(torch.full_like(images, -1), sketches)
    assert own.shape == (16,) and own.min() > 0.8
    assert shuffled.mean() < 0.5 * own.mean()
    assert torch.all(blank == 0)


def test_edge_f1_tolerance_forgives_a_one_pixel_shift():
    dataset = make_dataset("shapes", "sketch", length=8)
    images = torch.stack([dataset[i][0] for i in range(8)])
    sketches = torch.stack([dataset[i][1] for i in range(8)]).roll(1, dims=-1)
    assert edge_f1(images, sketches, tolerance=1).mean() > edge_f1(images, sketches, tolerance=0).mean() + 0.2
