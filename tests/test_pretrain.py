"""A few-step pretraining run writes a base that loads through the same code as SD1.5."""

import json

import pytest
import torch
from PIL import Image

from bayes_bps.base import FrozenBase, sample_images
from bayes_bps.base.pretraining import PretrainOptions, build_scheduler, min_snr_weights, pretrain
from bayes_bps.data import build_sketch_dataset
from bayes_bps.pretrain import main


def _tiny(out, domain, **overrides):
    options = dict(out=out, domain=domain, unet_preset="tiny", caption_dim=32, steps=3,
                   batch_size=4, warmup_steps=1, train_scenes=16, classifier_steps=2,
                   eval_samples=6, eval_ddim_steps=2)
    return PretrainOptions(**{**options, **overrides})


@pytest.mark.slow
def test_few_step_pretrain_writes_a_loadable_base_with_a_model_card(tmp_path):
    out = pretrain(_tiny(tmp_path / "digits", "digits"), ["--domain", "digits"])
    base = FrozenBase.from_pretrained(out)
    assert base.classifier is not None and base.vae is None
    assert (base.image_channels, base.resolution) == (1, 32)
    card = (out / "README.md").read_text()
    for expected in ("python -m bayes_bps.pretrain --domain digits", "wall time", "agreement",
                     "chance", "loss.png", "samples.png", "Min-SNR-γ weighted (γ = 5)"):
        assert expected in card
    for figure in ("loss.png", "samples.png"):
        assert Image.open(out / figure).size[0] > 100
    stats = json.loads((out / "pretrain_stats.json").read_text())
    assert stats["evaluation"]["generated"]["n"] == 6
    assert torch.isfinite(torch.tensor(stats["final_loss"]))
    images = sample_images(base, ["a handwritten digit 3"], steps=2, progress=False)
    assert images.shape == (1, 1, 32, 32)

    # a second stage continues from the first one's weights and keeps its history
    first_unet = {k: v.clone() for k, v in base.unet.state_dict().items()}
    continued = pretrain(_tiny(tmp_path / "stage2", "digits", init_from=out, steps=2),
                         ["--init-from", str(out)])
    stats = json.loads((continued / "pretrain_stats.json").read_text())
    assert [stage["steps"] for stage in stats["stages"]] == [3, 2]
    assert "--init-from" in (continued / "README.md").read_text()
    second_unet = FrozenBase.from_pretrained(continued).unet.state_dict()
    assert any(not torch.equal(second_unet[k], v) for k, v in first_unet.items())


def test_min_snr_weights_cap_the_signal_to_noise_ratio_at_gamma():
    scheduler = build_scheduler()
    timesteps = torch.tensor([0, 100, 500, 999])
    alphas_cumprod = scheduler.alphas_cumprod[timesteps].double()
    snr = alphas_cumprod / (1 - alphas_cumprod)
    weights = min_snr_weights(scheduler, timesteps, gamma=5.0).double()
    assert snr[0] > 5 > snr[-1], "the chosen timesteps must straddle γ"
    # low noise (SNR above γ) is down-weighted to γ / SNR; high noise keeps weight 1
    expected = torch.where(snr > 5, 5 / snr, torch.ones_like(snr))
    torch.testing.assert_close(weights, expected, rtol=1e-5, atol=0)
    assert not scheduler.config.clip_sample, "clipping x_0 at each step made guidance hurt"


def _folder_dataset(root):
    images = root / "images"
    images.mkdir()
    for k in range(4):
        picture = torch.zeros(20, 20, 3, dtype=torch.uint8)
        picture[4 + k : 12 + k, 5:15] = 255
        Image.fromarray(picture.numpy()).save(images / f"{k}.png")
    return build_sketch_dataset(images, root / "pairs", caption="a white box", resolution=16)


def test_folder_pretrain_is_reproducible_from_the_seed(tmp_path):
    pairs = _folder_dataset(tmp_path)
    runs = [pretrain(_tiny(tmp_path / f"run{k}", f"folder:{pairs}", resolution=16, steps=2))
            for k in range(2)]
    first, second = (FrozenBase.from_pretrained(run) for run in runs)
    assert first.classifier is None, "a user folder has no domain classifier"
    for name, value in first.unet.state_dict().items():
        assert torch.equal(value, second.unet.state_dict()[name]), name
    assert "agreement" not in (runs[0] / "README.md").read_text()


@pytest.mark.parametrize("argv, message", [
    (["--out", "x", "--data", "pairs"], "folder:PATH"),
    (["--out", "x", "--resolution", "8"], "resolution"),
])
def test_cli_rejects_bad_options(argv, message, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err
