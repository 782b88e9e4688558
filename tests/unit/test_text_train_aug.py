"""Training-time text augmentation (nlpaug) and the left/right flip."""

from __future__ import annotations

import random

import numpy as np
import pytest

from lib.text.attributes import parse_sentence
from lib.text.train_aug import TextAugConfig, TextAugmenter, flip_sentence

S = "A gray pickup truck turns left at the intersection followed by a red sedan."


@pytest.fixture(scope="module")
def strong() -> TextAugmenter:
    return TextAugmenter(TextAugConfig(p_synonym=1.0, p_swap=0.5, p_delete=0.5, p_spelling=0.5, word_p=0.2))


def test_deterministic_given_the_rng_and_no_global_side_effects(strong: TextAugmenter) -> None:
    random.seed(5)
    np.random.seed(5)
    before = (random.random(), np.random.random())
    random.seed(5)
    np.random.seed(5)
    a = [strong(S, np.random.default_rng(3)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    assert (random.random(), np.random.random()) == before  # global RNG states restored
    rng = np.random.default_rng(0)
    outs = {strong(S, rng) for _ in range(30)}
    assert len(outs) > 5  # it does augment
    assert strong(S, random.Random(1)) == strong(S, random.Random(1))
    with pytest.raises(TypeError, match="rng must be"):
        strong(S, 3)


def test_augmented_sentences_keep_the_attributes(strong: TextAugmenter) -> None:
    rng = np.random.default_rng(1)
    for _ in range(60):
        out = strong(S, rng)
        assert "nnnnn" not in out and out[0].isupper()
        words = out.lower().replace(".", " ").split()
        # colour, type and manoeuvre words are never deleted or misspelt (swaps may move them)
        assert "left" in words and ("gray" in words or "grey" in words) and "red" in words and "sedan" in words
    # without swaps the parsed attributes are unchanged
    keep = TextAugmenter(TextAugConfig(p_synonym=1.0, p_swap=0.0, p_delete=0.5, p_spelling=0.5, word_p=0.2))
    truth = parse_sentence(S)
    for _ in range(20):
        got = parse_sentence(keep(S, rng))
        assert (got.colour, got.vehicle_type, got.manoeuvre) == (truth.colour, truth.vehicle_type, truth.manoeuvre)


def test_zero_probabilities_are_identity() -> None:
    aug = TextAugmenter(TextAugConfig(p_synonym=0, p_swap=0, p_delete=0, p_spelling=0))
    assert aug(S, np.random.default_rng(0)) == S


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="p_swap must be a probability"):
        TextAugConfig(p_swap=1.5)
    with pytest.raises(ValueError, match="unknown keys \\['p_typo'\\]"):
        TextAugConfig.from_dict({"p_typo": 0.1})
    assert TextAugConfig.from_dict({"p_delete": 0.2}).p_delete == 0.2


def test_flip_sentence() -> None:
    assert flip_sentence("A car turns left, then Right; LEFT lane.") == "A car turns right, then Left; RIGHT lane."
    assert flip_sentence("It heads leftward and keeps straight.") == "It heads rightward and keeps straight."
    assert flip_sentence("A bright car on the leftmost lane.") == "A bright car on the leftmost lane."
    assert flip_sentence(flip_sentence(S)) == S


def test_synonyms_leave_out_the_synthetic_test_only_wording() -> None:
    vocab = pytest.importorskip("lib.synthetic.vocab")
    from lib.text.train_aug import DOMAIN_SYNONYMS

    held_out = {w.lower() for c in vocab.COLOURS.values() for w in c.test_only_words}
    held_out |= {w.lower() for t in vocab.TYPES.values() for w in t.test_only_words}
    held_out |= {p.present.split(" {")[0] for ps in vocab.VERB_PHRASES.values() for p in ps if p.test_only}
    ours = {w.lower() for group in DOMAIN_SYNONYMS for w in group}
    assert not {w for w in ours for h in held_out if h in w or w in h and len(w.split()) > 1}
