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


# --- training-time use (data.train_aug of both families) ----------------------------------------------------------
def test_train_aug_config_is_opt_in_and_names_unknown_keys() -> None:
    from lib.text.train_aug import train_aug_config

    off = train_aug_config({})
    assert not off.active and train_aug_config(None) == off
    assert (off.p_synonym, off.p_swap, off.p_delete, off.p_spelling, off.p_flip) == (0, 0, 0, 0, 0)
    flip = train_aug_config({"p_flip": 0.5})
    assert flip.active and not flip.changes_words and flip.p_synonym == 0 and flip.word_p == 0.1
    assert train_aug_config({"p_swap": 1}).changes_words
    with pytest.raises(ValueError, match="p_flipp"):
        train_aug_config({"p_flipp": 0.5})
    with pytest.raises(ValueError, match="p_flip must be a probability"):
        train_aug_config({"p_flip": 2})
    with pytest.raises(ValueError, match="expected a mapping"):
        train_aug_config([0.5])  # type: ignore[arg-type]


def test_flip_allowed_only_where_left_right_are_directions() -> None:
    from lib.text.train_aug import flip_allowed, mentions_left_right

    for s in ("A red car goes left.", "Red sedan heading right.", "The car drives left at the intersection.",
              "A white SUV turns to the right.", "A bus in the left lane makes a right turn.", "A car stops.",
              "A truck keeps straight.", "It heads leftward.", "A right-turning van."):
        assert flip_allowed(s), s
    for s in ("A car right behind a truck turns left.", "A car has left the parking lot.",
              "A sedan turns right after the bus.", "A van right in front of a truck."):
        assert not flip_allowed(s), s
    assert mentions_left_right("turns Left") and not mentions_left_right("goes straight, bright light")


def test_sample_augment_is_a_function_of_the_seed() -> None:
    import pickle

    from lib.text.train_aug import SampleAugment, sample_rng, train_aug_config

    assert sample_rng(5).random() == sample_rng(5).random() != sample_rng(6).random()
    assert sample_rng(5).random() != np.random.default_rng(5).random()  # a stream apart from the sample's draws
    flip = SampleAugment(train_aug_config({"p_flip": 1.0}))
    assert flip(S, 3) == (flip_sentence(S), True)
    assert flip("A car right behind a bus turns left.", 3) == ("A car right behind a bus turns left.", False)
    assert flip("A red car goes straight.", 3) == ("A red car goes straight.", True)  # mirror-invariant text
    half = SampleAugment(train_aug_config({"p_flip": 0.5}))
    flips = [half(S, seed)[1] for seed in range(200)]
    assert 60 < sum(flips) < 140 and flips == [half(S, seed)[1] for seed in range(200)]
    words = SampleAugment(train_aug_config({"p_synonym": 1.0, "p_swap": 1.0}))
    outs = [words(S, seed)[0] for seed in range(10)]
    assert outs == [words(S, seed)[0] for seed in range(10)] and any(o != S for o in outs)
    again = pickle.loads(pickle.dumps(words))  # the nlpaug augmenters are rebuilt, not pickled
    assert again._augmenter is None and again(S, 4) == words(S, 4)
    # cached text features: the sentence cannot change
    fixed = SampleAugment(train_aug_config({"p_flip": 1.0}), fixed_text=True)
    assert fixed(S, 3) == (S, False) and fixed("A red car goes straight.", 3) == ("A red car goes straight.", True)
    with pytest.raises(ValueError, match="cache_text: false"):
        SampleAugment(train_aug_config({"p_swap": 0.5}), fixed_text=True)
