"""Unsteered samples are cached by content: a hit is the same tensor, any change is a miss."""

import torch

from bayes_bps.base import sample_cache as cache_module
from bayes_bps.base import sample_images
from bayes_bps.base.sample_cache import cached_sample_images
from tests.tiny_models import tiny_pixel_base

SAMPLING = {"steps": 2, "seed": 1, "guidance_scale": 2.0, "progress": False}


def test_a_hit_returns_the_samples_and_any_change_of_input_misses(tmp_path, monkeypatch):
    base = tiny_pixel_base()
    captions = ["a red circle", "a circle"]
    fresh = cached_sample_images(base, captions, cache=tmp_path, **SAMPLING)
    torch.testing.assert_close(fresh, sample_images(base, captions, **SAMPLING), rtol=0, atol=0)
    assert len(list(tmp_path.glob("*.pt"))) == 1

    calls = []
    monkeypatch.setattr(cache_module, "sample_images", lambda *a, **k: calls.append(a) or sample_images(*a, **k))
    assert torch.equal(cached_sample_images(base, captions, cache=tmp_path, **SAMPLING), fresh)
    assert calls == []  # read from the file
    cached_sample_images(base, captions[::-1], cache=tmp_path, **SAMPLING)
    cached_sample_images(base, captions, cache=tmp_path, **{**SAMPLING, "seed": 2})
    with torch.no_grad():
        next(base.unet.parameters()).add_(1e-3)  # another base
    cached_sample_images(base, captions, cache=tmp_path, **SAMPLING)
    assert len(calls) == 3 and len(list(tmp_path.glob("*.pt"))) == 4
    assert cached_sample_images(base, captions, cache=None, **SAMPLING).shape == fresh.shape  # off: no file
    assert len(list(tmp_path.glob("*.pt"))) == 4
