"""The word-level caption encoder and the caption-reading domain classifier."""

import torch

from bayes_bps.base.caption_encoder import CaptionEncoder, vocabulary_from
from bayes_bps.base.classifier import DomainClassifier, caption_agreement


def test_tokenizer_pads_truncates_and_marks_unknown_words():
    encoder = CaptionEncoder(vocabulary_from(["a red circle", "a blue square"]), max_length=4)
    ids = encoder.tokenize(["a red circle", "", "a purple square and more words"])
    pad, unknown = encoder.token_ids["<pad>"], encoder.token_ids["<unk>"]
    assert ids[0].tolist() == [encoder.token_ids[w] for w in ("a", "red", "circle")] + [pad]
    assert ids[1].tolist() == [pad] * 4
    assert ids[2].tolist() == [encoder.token_ids["a"], unknown, encoder.token_ids["square"], unknown]


def test_caption_encoder_round_trips_through_save_pretrained(tmp_path):
    torch.manual_seed(0)
    encoder = CaptionEncoder(["a", "red", "circle"], hidden_size=16, num_heads=2)
    states = encoder(["a red circle", "a circle"])
    assert states.shape == (2, 12, 16) and not torch.allclose(states[0], states[1])
    encoder.save_pretrained(tmp_path)
    torch.testing.assert_close(CaptionEncoder.from_pretrained(tmp_path)(["a red circle", "a circle"]),
                               states)


def test_classifier_reads_labels_from_captions():
    classifier = DomainClassifier.for_domain("shapes", 3)
    labels = classifier.config.labels
    targets = classifier.caption_targets(["a red circle and a blue square", "a cyan triangle"])
    assert targets.sum(dim=1).tolist() == [2, 1]
    assert targets[0, labels.index("blue square")] == 1 and targets[1, labels.index("cyan triangle")] == 1

    digits = DomainClassifier.for_domain("digits", 1)
    assert digits.caption_targets(["a handwritten digit 7", "a handwritten digit 0"]).tolist() == [7, 0]


def test_agreement_of_a_perfect_reader_is_one_and_chance_is_lower():
    classifier = DomainClassifier.for_domain("digits", 1)
    captions = [f"a handwritten digit {k % 10}" for k in range(50)]
    # a classifier whose logits are the caption's one-hot: perfect agreement
    classifier.forward = lambda images: torch.nn.functional.one_hot(
        classifier.caption_targets(captions), 10).float()
    result = caption_agreement(classifier, torch.zeros(50, 1, 8, 8), captions)
    assert result["agreement"] == result["label_f1"] == 1.0 and result["n"] == 50
    assert 0.0 < result["chance"] == result["label_f1_chance"] < 0.3  # about 1/10 for digits


def test_label_f1_gives_partial_credit_for_multi_label_captions():
    classifier = DomainClassifier.for_domain("shapes", 3)
    labels = classifier.config.labels
    captions = ["a red circle and a blue square", "a green triangle"]
    # predicts "red circle" only for the first image, and exactly the second
    predicted = torch.zeros(2, len(labels))
    predicted[0, labels.index("red circle")] = predicted[1, labels.index("green triangle")] = 1
    classifier.forward = lambda images: predicted * 20 - 10
    result = caption_agreement(classifier, torch.zeros(2, 3, 8, 8), captions)
    assert result["agreement"] == 0.5
    assert abs(result["label_f1"] - (2 / 3 + 1) / 2) < 1e-6
