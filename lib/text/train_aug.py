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
together with a horizontally mirrored crop and motion map. ``p_flip`` is the probability per training sample of that
flip; :func:`flip_allowed` says which sentences may be flipped.

In training (the ``data.train_aug`` mapping of both families' params files, see ``docs/fidelity_switches.md``) the
dataset calls :class:`SampleAugment`: ``train_aug_config`` turns the mapping into a :class:`TextAugConfig` in which
every probability not given is 0 (empty mapping = off, the paper setting), and every random choice comes from
:func:`sample_rng` (the sample key's seed alone, a stream apart from the sample's other draws).
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
    p_flip: float = 0.0
    """Probability per training sample of the left/right flip (mirrored images + :func:`flip_sentence`)."""

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

    @property
    def changes_words(self) -> bool:
        """Whether any word augmenter (synonym, swap, delete, spelling) is on."""
        return any(p > 0 for p in (self.p_synonym, self.p_swap, self.p_delete, self.p_spelling))

    @property
    def active(self) -> bool:
        return self.changes_words or self.p_flip > 0


OFF = {"p_synonym": 0.0, "p_swap": 0.0, "p_delete": 0.0, "p_spelling": 0.0, "p_flip": 0.0}


def train_aug_config(d: dict[str, Any] | None) -> TextAugConfig:
    """The ``data.train_aug`` mapping as a config: each augmentation is opt-in (a probability not given is 0, so
    ``{}`` is off); ``word_p`` and ``max_words`` keep the :class:`TextAugConfig` defaults. Unknown keys and
    values outside [0, 1] raise ``ValueError`` naming them."""
    if d is not None and not isinstance(d, dict):
        raise ValueError(f"expected a mapping of {sorted(f.name for f in fields(TextAugConfig))}, got {d!r}")
    return TextAugConfig.from_dict({**OFF, **(d or {})})


AUG_STREAM = 7
"""Second word of :func:`sample_rng`'s seed: the augmentation draws are a stream apart from the sample's others."""


def sample_rng(seed: int, stream: int = AUG_STREAM) -> np.random.Generator:
    """An augmentation RNG of one training sample: ``default_rng([seed, stream])``, from the sample key's seed only (so
    turning an augmentation on or off leaves the sample's other random draws unchanged). ``stream`` keeps two
    augmentations' draws apart (the text augmentation and flip: 7)."""
    return np.random.default_rng([int(seed) % (1 << 64), int(stream)])


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


# Words around "left"/"right" that make it a direction (the text side of a mirror image). Anything else ("right
# behind", "right after", "has left the") is another meaning, and a sentence with such a use is not flipped.
_DIRECTION_BEFORE = frozenset({
    "turn", "turns", "turning", "turned", "to", "the", "a", "its", "far", "then", "goes", "going", "go", "went",
    "heads", "heading", "head", "headed", "veers", "veering", "veer", "bears", "bearing", "bear", "swerves",
    "swerving", "moves", "moving", "move", "drives", "driving", "drive", "travels", "traveling", "travelling",
    "keeps", "keeping", "keep", "stays", "staying", "hangs", "hanging", "hooks", "hooking", "takes", "taking"
})
_DIRECTION_AFTER = frozenset({
    "turn", "turns", "turning", "lane", "lanes", "side", "hand", "corner", "curve", "bend", "direction"
})
_NOT_DIRECTION_AFTER = frozenset({
    "behind", "after", "before", "away", "now", "beside", "next", "there", "here", "in"
})
_WORD_RE = re.compile(r"[a-z]+")


def mentions_left_right(s: str) -> bool:
    """Whether ``s`` has a word that :func:`flip_sentence` changes (left, right, leftward(s), rightward(s))."""
    return _FLIP_RE.search(s) is not None


def flip_allowed(s: str) -> bool:
    """Whether a sentence still describes a horizontally mirrored image once :func:`flip_sentence` is applied.

    True when it mentions neither left nor right (its description does not depend on the side: straight, stop,
    colours, types), or when every ``left``/``right`` in it is a direction: preceded by a motion word or an article
    (``turns left``, ``goes right``, ``to the left``, ``makes a right``, ``heading left``) or followed by ``turn``,
    ``lane``, ``side``, ``hand``, ..., and not followed by ``behind``, ``after``, ``before``, ``away``, ``in``, ...
    (``right behind``, ``right after`` are not directions; nor is ``left`` in ``has left the``). ``leftward(s)`` and
    ``rightward(s)`` are always directions. Conservative: a sentence with any other use is not flipped.
    """
    words = _WORD_RE.findall(s.lower())
    for i, w in enumerate(words):
        if w not in ("left", "right"):
            continue
        before = words[i - 1] if i > 0 else ""
        after = words[i + 1] if i + 1 < len(words) else ""
        if after in _NOT_DIRECTION_AFTER or not (before in _DIRECTION_BEFORE or after in _DIRECTION_AFTER):
            return False
    return True


class SampleAugment:
    """The training-time augmentation of one sample, as both families' training datasets apply it.

    ``SampleAugment(config, fixed_text=False)(sentence, seed) -> (sentence, flip)``: with the RNG
    :func:`sample_rng(seed) <sample_rng>`, first a flip coin (probability ``p_flip``; the sample is flipped only when
    :func:`flip_allowed`), then the word augmenters (:class:`TextAugmenter`) on the possibly flipped sentence. The
    caller mirrors the sample's images when ``flip`` is true. ``fixed_text``: the sentence cannot change (Part One
    with cached text features): word augmenters are refused, and only sentences without left/right are flipped
    (mirroring the images of such a sentence keeps it true). The nlpaug augmenters are built on first use (and not
    pickled), so building a dataset stays cheap.
    """

    def __init__(self, config: TextAugConfig, fixed_text: bool = False) -> None:
        if fixed_text and config.changes_words:
            raise ValueError("data.train_aug: p_synonym / p_swap / p_delete / p_spelling change the sentence, but the "
                             "text features are cached (set data.cache_text: false to run the text encoder on the "
                             "augmented sentences)")
        self.config, self.fixed_text = config, fixed_text
        self._augmenter: TextAugmenter | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_augmenter": None}

    @property
    def augmenter(self) -> TextAugmenter:
        if self._augmenter is None:
            self._augmenter = TextAugmenter(self.config)
        return self._augmenter

    def __call__(self, sentence: str, seed: int) -> tuple[str, bool]:
        rng = sample_rng(seed)
        flip = bool(rng.random() < self.config.p_flip) and flip_allowed(sentence)
        if flip and self.fixed_text and mentions_left_right(sentence):
            flip = False
        if flip:
            sentence = flip_sentence(sentence)
        if self.config.changes_words:
            sentence = self.augmenter(sentence, rng)
        return sentence, flip
