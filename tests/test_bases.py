"""The shipped embedded bases: they load, sample reproducibly and draw what captions say."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from bayes_bps.base import sample_images
from bayes_bps.base.classifier import caption_agreement
from bayes_bps.base.frozen import EMBEDDED_BASES, EMBEDDED_BASES_DIR, FrozenBase
from bayes_bps.data import make_dataset
from bayes_bps.sample import main


@pytest.fixture(scope="module", params=EMBEDDED_BASES)
def base(request):
    return request.param, FrozenBase.from_pretrained(request.param)


def test_shipped_base_is_frozen_and_documented(base):
    name, base = base
    assert base.domain == name and base.classifier is not None and base.vae is None
    assert base.resolution == 32 and not any(p.requires_grad for p in base.parameters())
    card = (EMBEDDED_BASES_DIR / name / "README.md").read_text()
    for expected in (f"--domain {name}", "wall time", "agreement", "chance", "loss.png", "samples.png"):
        assert expected in card
    for figure in ("loss.png", "samples.png"):
        assert Image.open(EMBEDDED_BASES_DIR / name / figure).size[0] > 200


def test_shipped_bases_fit_the_size_budget():
    total = sum(f.stat().st_size for f in Path(EMBEDDED_BASES_DIR).rglob("*") if f.is_file())
    assert total <= 20 * 2**20, f"{total / 2**20:.1f} MB"


def test_the_shipped_classifier_reads_real_held_out_images(base):
    name, base = base
    test = make_dataset(name, split="validation", length=100)
    images = torch.stack([test[i][0] for i in range(100)])
    captions = [test[i][2] for i in range(100)]
    result = caption_agreement(base.classifier, images, captions)
    assert result["agreement"] >= 0.9 and result["chance"] < 0.3, result


def test_sampling_is_reproducible_from_the_seed(base):
    _, base = base
    captions = ["a handwritten digit 4", "a red circle and a blue square"]
    first, again = (sample_images(base, captions, steps=4, seed=0, progress=False) for _ in range(2))
    other = sample_images(base, captions, steps=4, seed=1, progress=False)
    assert first.shape == (2, base.image_channels, 32, 32)
    assert torch.equal(first, again) and not torch.equal(first, other)


@pytest.mark.slow
# Measured exactly as below (DDIM 25, default guidance 3, 40 validation captions): digits agreement
# 1.00 (chance 0.10), shapes 0.60 (chance 0.03); unguided they were 0.975 and 0.30. The bounds
# leave room for other CPUs' floating point.
@pytest.mark.parametrize("name, score, bound", [("digits", "agreement", 0.85), ("shapes", "agreement", 0.4)])
def test_samples_show_their_captions_well_above_chance(name, score, bound):
    base = FrozenBase.from_pretrained(name)
    test = make_dataset(name, split="validation", length=40)
    captions = [test[i][2] for i in range(40)]
    samples = sample_images(base, captions, steps=25, seed=0, progress=False)
    result = caption_agreement(base.classifier, samples, captions)
    chance = result["chance"] if score == "agreement" else result["label_f1_chance"]
    assert result[score] >= bound > 1.5 * chance, result


def test_sample_cli_writes_a_grid(tmp_path):
    out = tmp_path / "grid.png"
    main(["--base", "digits", "--caption", "a handwritten digit 7", "--n", "2", "--steps", "2",
          "--out", str(out)])
    assert Image.open(out).size[0] > 100
