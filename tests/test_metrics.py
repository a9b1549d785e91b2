"""Metrics against known answers: condition fidelity, distribution distances, intervals."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torchvision

from bayes_bps.base import resolve_base
from bayes_bps.base.classifier import DomainClassifier
from bayes_bps.data import make_dataset
from bayes_bps.metrics import (
    bootstrap_interval,
    condition_fidelity,
    distribution_distances,
    distribution_features,
    edge_f1,
    find_inception_weights,
    foreground_iou,
    frechet_distance,
    kernel_inception_distance,
    label_agreement,
    layout_agreement,
    load_fid_inception,
    mean_estimate,
    style,
)
from bayes_bps.metrics.inception import WEIGHTS_FILE


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


# --- distribution distances ----------------------------------------------------------------

def _sample_with_moments(rng, n, mean, sd):
    """n points whose sample mean and (n - 1)-covariance are exactly `mean` and diag(sd²)."""
    z = rng.normal(size=(n, len(mean)))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T
    return mean + z * sd


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(0)
    mean_a, sd_a = np.array([0.0, 1.0, -2.0, 0.5]), np.array([1.0, 2.0, 0.5, 1.5])
    mean_b, sd_b = np.array([1.0, 1.0, 0.0, 0.0]), np.array([2.0, 1.0, 0.5, 3.0])
    a, b = _sample_with_moments(rng, 50, mean_a, sd_a), _sample_with_moments(rng, 70, mean_b, sd_b)
    # tr(Σa + Σb − 2 (Σa Σb)^½) = Σ (sd_a − sd_b)² for diagonal covariances
    expected = ((mean_a - mean_b) ** 2).sum() + ((sd_a - sd_b) ** 2).sum()
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("n", [20, 200])  # fewer and more images than features
def test_frechet_distance_is_torchmetrics_fid_and_zero_for_a_set_with_itself(n):
    """An independent implementation: torchmetrics' eigenvalue formula on the same moments.
    (pytorch-fid's `calculate_frechet_distance` passes `sqrtm` the `disp` argument SciPy 1.16
    deprecates and a later SciPy removes, so it cannot be the reference of a lasting test.)"""
    from torchmetrics.image.fid import _compute_fid

    rng = np.random.default_rng(n)
    a, b = rng.normal(size=(n, 64)), 1.5 * rng.normal(size=(n + 10, 64)) + 0.2
    moments = [torch.from_numpy(m) for x in (a, b) for m in (x.mean(0), np.cov(x, rowvar=False))]
    reference = float(_compute_fid(*moments))
    assert frechet_distance(a, b) == pytest.approx(reference, rel=1e-6)
    assert abs(frechet_distance(a, a)) < 1e-8


def test_kid_is_unbiased_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(0)
    same = np.array([kernel_inception_distance(rng.normal(size=(10, 8)), rng.normal(size=(10, 8)))
                     for _ in range(200)])
    shifted = np.array([kernel_inception_distance(rng.normal(size=(10, 8)), rng.normal(size=(10, 8)) + 1)
                        for _ in range(20)])
    assert abs(same.mean()) < 3 * same.std() / np.sqrt(len(same))
    assert shifted.min() > 0 and shifted.mean() > 10 * same.std() / np.sqrt(len(same))
    assert np.isfinite(kernel_inception_distance(rng.normal(size=(2, 8)), rng.normal(size=(3, 8))))


def test_kid_over_subsets_estimates_the_whole_set_kid():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(300, 8)), rng.normal(size=(250, 8)) + 0.5
    whole = kernel_inception_distance(a, b)
    subsets = kernel_inception_distance(a, b, subsets=50, subset_size=100, seed=3)
    assert subsets == kernel_inception_distance(a, b, subsets=50, subset_size=100, seed=3)
    assert subsets == pytest.approx(whole, rel=0.15) and subsets != whole

def test_kid_is_torchmetrics_kid_on_whole_sets():
    """An independent implementation: torchmetrics' polynomial-kernel MMD (equal set sizes)."""
    from torchmetrics.image import kid
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(60, 16)), rng.normal(size=(60, 16)) * 1.3 + 0.2
    expected = float(kid.poly_mmd(torch.from_numpy(a), torch.from_numpy(b)))
    assert kernel_inception_distance(a, b) == pytest.approx(expected, rel=1e-9)


def test_matched_pairs_bias_the_kid_and_a_disjoint_reference_does_not():
    """Why the study compares generated images with the reference split, never with their own
    targets: a generated image near its target shares the target's deviation from the mean, and
    the cross term counts each such pair. The generator here is exact (its images are drawn from
    the real distribution), so the KID's expectation is zero."""
    rng = np.random.default_rng(3)
    matched, disjoint = [], []
    for _ in range(200):
        targets = rng.normal(size=(20, 8))
        generated = 0.8 * targets + 0.6 * rng.normal(size=(20, 8))  # same distribution, near its target
        matched.append(kernel_inception_distance(targets, generated))
        disjoint.append(kernel_inception_distance(rng.normal(size=(20, 8)), generated))
    matched, disjoint = np.array(matched), np.array(disjoint)
    standard_error = disjoint.std() / np.sqrt(len(disjoint))
    assert abs(disjoint.mean()) < 3 * standard_error
    assert matched.mean() < -10 * standard_error and (matched < 0).mean() > 0.9


def test_distances_reject_mismatched_or_too_small_feature_sets():
    with pytest.raises(ValueError, match="features_a has 4 features per image and features_b 3"):
        frechet_distance(np.zeros((5, 4)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="n >= 2"):
        kernel_inception_distance(np.zeros((1, 4)), np.zeros((5, 4)))


# --- intervals -----------------------------------------------------------------------------

def test_bootstrap_interval_contains_the_mean_shrinks_with_n_and_is_reproducible():
    rng = np.random.default_rng(0)
    small, large = (mean_estimate(torch.from_numpy(rng.random(n))) for n in (20, 500))
    for estimate in (small, large):
        assert estimate.low < estimate.value < estimate.high
    assert (large.high - large.low) < 0.5 * (small.high - small.low)
    assert small.n == 20 and small.to_dict()["confidence"] == 0.95
    scores = rng.random(20)
    assert mean_estimate(scores, seed=4) == mean_estimate(scores, seed=4) != mean_estimate(scores, seed=5)


def test_bootstrap_interval_of_a_two_sample_distance_is_centred_on_its_value():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 16)), rng.normal(size=(30, 16)) + 0.5
    estimate = bootstrap_interval(frechet_distance, a, b, resamples=100)
    assert estimate.low < estimate.value < estimate.high and estimate.n == (40, 30)
    assert estimate == bootstrap_interval(frechet_distance, a, b, resamples=100)


# --- condition fidelity --------------------------------------------------------------------

def _shapes(task, count=32):
    dataset = make_dataset("shapes", task, length=count)
    images, conditions, captions = zip(*(dataset[i] for i in range(count)))
    return torch.stack(images), torch.stack(conditions), list(captions)


def test_foreground_iou_is_one_for_a_scene_and_its_own_mask_and_low_otherwise():
    images, masks, _ = _shapes("segmentation")
    own = foreground_iou(images, masks)
    assert own.shape == (32,) and torch.all(own == 1)
    assert foreground_iou(images, masks.roll(1, dims=0)).mean() < 0.5
    assert torch.all(foreground_iou(torch.full_like(images, -0.8), masks) == 0)


def test_layout_agreement_is_perfect_for_a_scene_in_its_own_boxes_and_low_otherwise():
    images, layouts, _ = _shapes("layout")
    own, shuffled = layout_agreement(images, layouts), layout_agreement(images, layouts.roll(1, dims=0))
    assert torch.all(own["box_precision"] == 1) and torch.all(own["box_recall"] == 1)
    assert shuffled["box_precision"].mean() < 0.6 and shuffled["box_recall"].mean() < 0.6
    blank = layout_agreement(torch.full_like(images, -0.8), layouts)
    assert torch.all(blank["box_recall"] == 0) and torch.all(blank["box_f1"] == 0)
    assert torch.all(own["box_f1"] == 1) and torch.all(shuffled["box_f1"] <= torch.maximum(
        shuffled["box_precision"], shuffled["box_recall"]))


@pytest.fixture(scope="module")
def digits_classifier():
    return DomainClassifier.from_pretrained(resolve_base("digits") / "classifier")


def _digits(count=64):
    dataset = make_dataset("digits", "sketch", split="validation", length=count)
    images, sketches, captions = zip(*(dataset[i] for i in range(count)))
    return torch.stack(images), torch.stack(sketches), list(captions)


def test_digit_class_agreement_is_high_on_real_held_out_digits(digits_classifier):
    images, _, captions = _digits()
    assert label_agreement(digits_classifier, images, captions).mean() > 0.9
    assert label_agreement(digits_classifier, images, captions[1:] + captions[:1]).mean() < 0.3


def test_condition_fidelity_gathers_the_scores_of_a_task(digits_classifier, monkeypatch):
    untrained = DomainClassifier(3, style.STYLE_LABELS, multi_label=False, width=8)
    monkeypatch.setattr(style, "style_classifier", lambda resolution: untrained)  # its training is tested below
    images, sketches, captions = _digits(16)
    scores = condition_fidelity("sketch", images, sketches, captions, classifier=digits_classifier)
    assert set(scores) == {"edge_f1", "label_agreement"}
    assert all(score.shape == (16,) for score in scores.values())
    layout_scores = set(condition_fidelity("layout", *_shapes("layout", 4)))
    assert layout_scores == {"box_precision", "box_recall", "box_f1"}
    assert set(condition_fidelity("style", *_shapes("style", 4))) == {"style_agreement"}
    with pytest.raises(ValueError, match="tasks are sketch"):
        condition_fidelity("depth", images, sketches, captions)


@pytest.mark.slow
def test_the_style_classifier_tells_hatched_from_plain_held_out_scenes_and_an_untrained_one_cannot():
    held_out = style.PlainAndHatched("validation", 100, 32)
    plain, hatched = held_out.images[0::2], held_out.images[1::2]
    trained = style.train_style_classifier(32)
    assert style.style_agreement(hatched, trained).mean() > 0.95 and style.style_agreement(plain, trained).mean() < 0.05
    untrained = DomainClassifier(3, style.STYLE_LABELS, multi_label=False, width=8)
    gap = style.style_agreement(hatched, untrained).mean() - style.style_agreement(plain, untrained).mean()
    assert abs(gap) < 0.5


# --- features: domain classifier and pytorch-fid's Inception -------------------------------

@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """A torch hub cache without pytorch-fid's weights file."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub" / "checkpoints"


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory):
    """Randomly initialised weights of the FID Inception's architecture: pytorch-fid patches only
    forward passes of torchvision's blocks, so torchvision's 1008-class net has the same keys."""
    network = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008,
                                              init_weights=False)
    path = tmp_path_factory.mktemp("inception") / "random_inception.pth"
    torch.save(network.state_dict(), path)
    return path


def test_domain_features_name_their_distances_domain_fd(digits_classifier, empty_hub):
    space = distribution_features(SimpleNamespace(classifier=digits_classifier, device="cpu"))
    assert space.name == "domain FD" and space.kid_name == "domain KID"
    images, _, _ = _digits(40)
    assert space.extract(images).shape == (40, 128)
    distances = distribution_distances(space, images[:20], images[20:], resamples=20)
    assert set(distances) == {"domain FD", "domain KID"}
    assert all(estimate.n == (20, 20) for estimate in distances.values())
    with pytest.raises(ValueError, match="no features for distribution distances"):
        distribution_features(SimpleNamespace(classifier=None, device="cpu"))


def test_inception_features_from_a_local_weights_file(inception_weights, digits_classifier):
    space = distribution_features(SimpleNamespace(classifier=digits_classifier, device="cpu"),
                                  inception_weights)
    assert space.name == "FID" and space.kid_name == "KID"
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    features = space.extract(image.expand(2, -1, -1, -1))  # resized to 299x299 inside
    assert features.shape == (2, 2048) and features.dtype == np.float64
    np.testing.assert_array_equal(features[0], features[1])


def test_inception_weights_are_found_in_the_hub_cache_or_named_when_missing_or_wrong(empty_hub, tmp_path):
    assert find_inception_weights() is None
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        find_inception_weights(tmp_path / "missing.pth")
    empty_hub.mkdir(parents=True)
    (empty_hub / WEIGHTS_FILE).write_bytes(b"")
    assert find_inception_weights() == empty_hub / WEIGHTS_FILE
    wrong = tmp_path / "wrong_keys.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, wrong)
    with pytest.raises(ValueError, match="wrong_keys.pth is not a state dict"):
        load_fid_inception(wrong)
    with pytest.raises(ValueError, match=f"cannot read Inception weights file .*{WEIGHTS_FILE}"):
        load_fid_inception(empty_hub / WEIGHTS_FILE)
