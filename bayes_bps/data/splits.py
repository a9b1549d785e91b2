"""The splits of the built-in domains, and the promise each one keeps.

    train       what the embedded base and its domain classifier were pretrained on, and the
                pool every fit draws its N pairs from; `seed` picks which N
    validation  for tuning (learning rates, conditioning scales, steps); never tested on
    test        the conditions a method is scored on
    reference   real images for distribution metrics (FD, KID), disjoint from the test
                conditions, so no generated image is compared with its own target

The three held-out splits are one fixed set per domain, whatever `seed` is passed: every seed
of a study is scored on the same test images, and none of them was seen in pretraining,
tuning or steering (`tests/test_splits.py` checks this against the pretrained bases' cards).
"""

SPLITS: tuple[str, ...] = ("train", "validation", "test", "reference")
HELD_OUT: tuple[str, ...] = SPLITS[1:]
# The seed the held-out splits are drawn with (and the bases' pretraining seed).
HELD_OUT_SEED = 0


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
