"""The held-out splits are fixed across seeds and disjoint from what the embedded bases saw.

The bases' cards (`pretrain_stats.json`) record the options they were pretrained with; the
base and its domain classifier saw exactly `split="train"` of those options. The study scores
every seed on the first conditions of the test split and compares distributions with the
reference split, so these tests read the splits as far as any study reaches.
"""

import json

import pytest
import torch

from bayes_bps.base.frozen import resolve_base
from bayes_bps.data import HELD_OUT, make_dataset
from bayes_bps.data.shapes import (
    EMBEDDED_BASE_POOL,
    STREAMS,
    ShapesDataset,
    embedded_base_scenes,
    scene_split,
    stream_draw,
)
from bayes_bps.data.splits import HELD_OUT_SEED

STUDY_REACH = 512  # more held-out scenes than any study evaluates


def _pretraining_options(name: str) -> dict:
    return json.loads((resolve_base(name) / "pretrain_stats.json").read_text())["options"]


def _scene_keys(dataset: ShapesDataset, count: int) -> set[tuple]:
    """A scene is a function of its objects: equal objects, equal images (no rendering needed)."""
    return {tuple(dataset.factors(i)) for i in range(count)}


def _pixels(dataset) -> set[bytes]:
    return {image.numpy().tobytes() for image in dataset.images}


@pytest.mark.parametrize("split", HELD_OUT)
@pytest.mark.parametrize("name", ["shapes", "digits"])
def test_held_out_splits_are_the_same_for_every_seed(name, split):
    first, other = (make_dataset(name, split=split, length=40, seed=seed) for seed in (0, 3))
    assert all(torch.equal(first[i][0], other[i][0]) and first[i][2] == other[i][2] for i in range(40))


@pytest.mark.parametrize("name", ["shapes", "digits"])
def test_seeds_draw_different_training_pairs(name):
    first, other = (make_dataset(name, split="train", length=10, seed=seed) for seed in (0, 1))
    assert not all(torch.equal(first[i][0], other[i][0]) for i in range(10))


def test_shapes_held_out_scenes_never_appear_in_the_bases_pretraining_pool():
    options = _pretraining_options("shapes")
    # the base's card names the pool the package skips: the same seed, size and resolution
    assert (options["seed"], options["train_scenes"], options["resolution"]) == tuple(EMBEDDED_BASE_POOL.values())
    seen = embedded_base_scenes()
    held_out = {split: _scene_keys(ShapesDataset(split=split, length=STUDY_REACH), STUDY_REACH)
                for split in HELD_OUT}
    for split, keys in held_out.items():
        assert not keys & seen, f"{len(keys & seen)} {split} scenes are in the base's pretraining pool"
    assert not held_out["test"] & held_out["reference"]
    assert not held_out["test"] & held_out["validation"]


@pytest.mark.parametrize("seed", range(5))
def test_shapes_training_pairs_of_any_seed_are_never_held_out(seed):
    train = ShapesDataset(split="train", seed=seed, length=400)
    assert {scene_split(train.factors(i)) for i in range(len(train))} == {"train"}
    held_out = set().union(*(_scene_keys(ShapesDataset(split=split, length=STUDY_REACH), STUDY_REACH)
                             for split in HELD_OUT))
    assert not _scene_keys(train, len(train)) & held_out


def test_the_partition_would_catch_a_stream_that_ignores_it():
    """Control: unfiltered draws of the held-out streams do repeat the base's scenes."""
    raw = {tuple(stream_draw(HELD_OUT_SEED, STREAMS["test"], draw, 32)) for draw in range(STUDY_REACH)}
    assert raw & embedded_base_scenes()


def test_digits_splits_partition_the_data_and_hold_out_what_the_base_never_saw():
    options = _pretraining_options("digits")
    assert options["seed"] == 0  # the train split is the same set for every seed; this checks the card
    train = make_dataset("digits", split="train", seed=5)
    splits = {split: make_dataset("digits", split=split) for split in HELD_OUT}
    assert len(train) + sum(len(dataset) for dataset in splits.values()) == 1797
    seen = _pixels(train)
    pixels = {split: _pixels(dataset) for split, dataset in splits.items()}
    for split, images in pixels.items():
        assert not images & seen, f"{len(images & seen)} {split} digits were in the base's training split"
    assert not pixels["test"] & pixels["reference"] and not pixels["test"] & pixels["validation"]


def test_an_unknown_split_names_the_splits():
    with pytest.raises(ValueError, match="train, validation, test, reference"):
        make_dataset("shapes", split="holdout")
