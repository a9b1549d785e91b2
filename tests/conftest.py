"""Fixtures shared by the end-to-end tests."""

import pytest

from bayes_bps.pretrain import PretrainOptions, pretrain


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory):
    """A digits base pretrained for two steps at 16x16: every output exists, nothing is good."""
    out = tmp_path_factory.mktemp("bases") / "digits16"
    return pretrain(PretrainOptions(out=out, domain="digits", resolution=16, unet_preset="tiny",
                                    caption_dim=32, steps=2, batch_size=4, warmup_steps=1,
                                    classifier_steps=2, eval_samples=4, eval_ddim_steps=2))
