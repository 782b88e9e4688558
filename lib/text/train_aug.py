"""Training-time text augmentation (nlpaug, offline augmenters only) and the left/right flip.

``TextAugmenter(TextAugConfig(...))`` is called by training code as ``augmenter(sentence, rng) -> str``; each
augmentation is applied with its own probability, in this order:

1. ``p_synonym`` — domain synonyms (:data:`DOMAIN_SYNONYMS`: meaning-preserving spellings and paraphrases of colours,
   vehicle types, manoeuvre verbs and places; near colours such as red/maroon or gray/silver are deliberately *not*
   synonyms), with nlpaug's ``ReservedAug``;
2. ``p_swap`` — swap neighbouring words (``RandomWordAug(action="swap")``);
3. ``p_delete`` — delete words (``RandomWordAug(action="delete")``);
4. ``p_spelling`` — common misspellings (``SpellingAug`` with the dictionary shipped inside nlpaug).

Deletion and misspelling never touch the colour / type / manoeuvre words (:data:`PROTECTED_WORDS`), so an augmented
sentence still describes the same vehicle.

``word_p`` is the share of a sentence's words each augmenter may touch (nlpaug's ``aug_p``), at most ``max_words``.
Deterministic given ``rng`` (a ``numpy.random.Generator`` or ``random.Random``): the global ``random`` and
``numpy.random`` states that nlpaug uses are seeded from ``rng`` for the call and restored afterwards.

``flip_sentence`` swaps left and right (the original wrote an image+text horizontal flip but left it off): use it
together with a horizontally mirrored crop and motion map.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

# Groups of interchangeable phrases (case-insensitive). Only true paraphrases: a synonym never changes the colour,
# the vehicle type or the manoeuvre a sentence describes. The table leaves out the wordings that the synthetic
# generator reserves for test queries (``test_only_words`` / ``test_only`` phrases in ``lib/synthetic/vocab.py``:
# saloon car, crossover, pick-up, hatch, people carrier, coach, charcoal, burgundy, proceeds straight ahead, comes
# to a halt, ...), so that measuring generalisation to unseen wording stays honest.
DOMAIN_SYNONYMS: list[list[str]] = [
    ["gray", "grey"],
    ["dark gray", "dark grey"],
    ["light gray", "light grey"],
    ["SUV", "sport utility vehicle"],
    ["pickup truck", "pickup", "pick up truck"],
    ["minivan", "mini van"],
    ["sedan", "sedan car"],
    ["turns left", "makes a left turn", "takes a left", "turns to the left"],
    ["turns right", "makes a right turn", "takes a right", "turns to the right"],
    ["turning left", "making a left turn", "taking a left", "turning to the left"],
    ["turning right", "making a right turn", "taking a right", "turning to the right"],
    ["goes straight", "drives straight", "continues straight", "keeps straight"],
    ["going straight", "driving straight", "continuing straight", "keeping straight"],
    ["stops", "comes to a stop"],
    ["drives", "travels", "moves"],
    ["intersection", "junction", "crossroads"],
    ["street", "road"],
    ["followed by", "trailed by"],
]

# Words that carry the attributes a retrieval model must learn: never deleted or misspelt.
PROTECTED_WORDS: list[str] = [
    "left", "right", "straight", "stop", "stops", "stopped", "turn", "turns", "turning", "waits", "waiting",
    "white", "black", "gray", "grey", "silver", "red", "maroon", "blue", "green", "yellow", "orange", "brown",
    "beige", "gold", "purple", "dark", "light",
    "sedan", "suv", "van", "minivan", "truck", "pickup", "bus", "hatchback", "wagon", "car", "jeep", "coupe",
    # parts of multi-word type names
    "pick", "up", "cargo", "box", "sport", "utility", "vehicle", "mini", "city", "compact",
]


@dataclass(frozen=True)
class TextAugConfig:
    p_synonym: float = 0.3
    p_swap: float = 0.1
    p_delete: float = 0.1
    p_spelling: float = 0.1
    word_p: float = 0.1
    max_words: int = 2

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "max_words":
                if not isinstance(v, int) or v < 1:
                    raise ValueError(f"TextAugConfig.max_words must be an integer >= 1, got {v!r}")
            elif not (isinstance(v, int | float) and 0.0 <= float(v) <= 1.0):
                raise ValueError(f"TextAugConfig.{f.name} must be a probability in [0, 1], got {v!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> TextAugConfig:
        d = dict(d or {})
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - allowed)
        if unknown:
            raise ValueError(f"TextAugConfig: unknown keys {unknown}; allowed: {sorted(allowed)}")
        return cls(**d)


def _protected(extra: list[str] | None = None) -> list[str]:
    """Protected words in the spellings nlpaug compares against (it matches stop words case-sensitively)."""
    words = PROTECTED_WORDS + (extra or [])
    return sorted({v for w in words for v in (w, w.capitalize(), w.upper())})


def _seed_from(rng: Any) -> int:
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(0, 2**31 - 1))
    if isinstance(rng, random.Random):
        return rng.randrange(0, 2**31 - 1)
    raise TypeError(f"rng must be a numpy.random.Generator or random.Random, got {type(rng).__name__}")


def _keep_initial_case(original: str, new: str) -> str:
    if original[:1].isupper() and new[:1].islower():
        return new[:1].upper() + new[1:]
    return new


class TextAugmenter:
    """``augmenter(sentence, rng) -> str``: nlpaug word augmentations with the probabilities of a config."""

    def __init__(self, config: TextAugConfig | None = None) -> None:
        import os

        import nlpaug
        import nlpaug.augmenter.word as naw

        self.config = c = config or TextAugConfig()
        spelling = os.path.join(os.path.dirname(nlpaug.__file__), "res", "word", "spelling", "spelling_en.txt")
        if not os.path.exists(spelling):
            raise FileNotFoundError(f"{spelling}: nlpaug's spelling dictionary is missing (reinstall nlpaug==1.1.11)")
        self._steps: list[tuple[str, float, Any]] = [
            ("synonym", c.p_synonym, naw.ReservedAug(reserved_tokens=DOMAIN_SYNONYMS, case_sensitive=False,
                                                     aug_p=max(c.word_p, 0.5), aug_max=c.max_words)),
            ("swap", c.p_swap, naw.RandomWordAug(action="swap", aug_p=c.word_p, aug_max=c.max_words)),
            ("delete", c.p_delete, naw.RandomWordAug(action="delete", aug_p=c.word_p, aug_max=c.max_words,
                                                     stopwords=_protected())),
            ("spelling", c.p_spelling, naw.SpellingAug(dict_path=spelling, aug_p=c.word_p, aug_max=c.max_words,
                                                         stopwords=_protected(["a", "an"]))),
        ]

    _connect = "nnnnn"  # nlpaug.augmenter.word.ReservedAug.CONNECT_TOKEN

    def __call__(self, sentence: str, rng: Any) -> str:
        seed = _seed_from(rng)
        local = random.Random(seed)
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            random.seed(seed)
            np.random.seed(seed)
            out = sentence
            for _, p, aug in self._steps:
                if p > 0 and local.random() < p:
                    res = aug.augment(out)
                    res = res[0] if isinstance(res, list) else res
                    if isinstance(res, str) and res.strip():
                        # ReservedAug leaves its phrase-joining token in phrases it did not replace
                        out = res.replace(self._connect, " ")
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
        return _keep_initial_case(sentence, out)


_FLIP = {"left": "right", "right": "left", "leftward": "rightward", "rightward": "leftward",
         "leftwards": "rightwards", "rightwards": "leftwards"}
_FLIP_RE = re.compile(r"\b(" + "|".join(sorted(_FLIP, key=len, reverse=True)) + r")\b", re.IGNORECASE)


def flip_sentence(s: str) -> str:
    """Swap ``left`` and ``right`` (and ``leftward(s)``/``rightward(s)``), keeping case: the text side of a
    horizontal flip. (``left`` as a past tense verb is rare in these descriptions and is flipped too.)"""

    def repl(m: re.Match[str]) -> str:
        w = m.group(0)
        new = _FLIP[w.lower()]
        if w.isupper():
            return new.upper()
        return new.capitalize() if w[:1].isupper() else new

    return _FLIP_RE.sub(repl, s)
