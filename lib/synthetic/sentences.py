"""Three sentences per track, as three annotators would write them.

Each annotator picks a template, a subject wording (article, size word, colour and type synonyms), a verb phrase
for the manoeuvre and, when the rendered scene makes it true, context: the intersection, the crosswalk, the lane,
the vehicle it follows or that follows it. Noise at a set rate: a typo or a near-colour confusion (silver for
gray...). Wording flagged test-only is used only in test queries, for a set share of their sentences.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lib.synthetic.vocab import COLOURS, TYPES, VERB_PHRASES, Phrase


@dataclass
class Sentence:
    text: str
    noise: str | None  # None | "typo" | "colour"
    test_only: bool  # uses wording that never appears in training sentences
    context: list[str]  # context clauses used (junction, following, ...)


def _pick(rng: np.random.Generator, items: list[Any] | tuple[Any, ...]) -> Any:
    return items[int(rng.integers(len(items)))]


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" and word.upper() != word else "a"


def _vehicle_words(vtype: str, colour: str, rng: np.random.Generator, test_only: bool, size: bool = True
                   ) -> tuple[str, str, bool]:
    """(colour word, type word with optional size word, used test-only wording)."""
    t = TYPES[vtype]
    c = COLOURS[colour]
    used = False
    cw = _pick(rng, c.words)
    tw = _pick(rng, t.words)
    if test_only:
        options = [("type", w) for w in t.test_only_words] + [("colour", w) for w in c.test_only_words]
        if options:
            kind, w = _pick(rng, options)
            if kind == "type":
                tw = w
            else:
                cw = w
            used = True
    if size and rng.random() < 0.25:
        sw = _pick(rng, t.size_words)
        if sw:
            tw = f"{sw} {tw}"
    return cw, tw, used


def _other(ctx: dict[str, Any], rng: np.random.Generator) -> str:
    cw, tw, _ = _vehicle_words(ctx["type"], ctx["colour"], rng, False, size=False)
    if rng.random() < 0.3:
        return f"another {cw} vehicle" if rng.random() < 0.5 else f"another {cw} {tw}"
    return f"{_article(cw)} {cw} {tw}"


def _lane_word(ctx: dict[str, Any]) -> str | None:
    lanes, lane = ctx.get("lanes", 0), ctx.get("lane", 0)
    if lanes < 2:
        return None
    if lane == 0:
        return "left"
    if lane == lanes - 1:
        return "right"
    return "middle"


def _facts(ctx: dict[str, Any]) -> set[str]:
    facts = set()
    if ctx.get("junction"):
        facts.add("junction")
    if ctx.get("crosswalk"):
        facts.add("crosswalk")
    return facts


def _typo(text: str, rng: np.random.Generator) -> str:
    words = text.split(" ")
    cand = [i for i, w in enumerate(words) if len(w.strip(".,")) >= 4]
    if not cand:
        return text
    i = _pick(rng, cand)
    w = words[i]
    core = w.rstrip(".,")
    tail = w[len(core):]
    j = int(rng.integers(1, len(core) - 1))
    op = int(rng.integers(3))
    if op == 0:
        core = core[:j] + core[j + 1] + core[j] + core[j + 2:]
    elif op == 1:
        core = core[:j] + core[j + 1:]
    else:
        core = core[:j] + core[j] + core[j:]
    words[i] = core + tail
    return " ".join(words)


def describe(truth: dict[str, Any], ctx: dict[str, Any], rng: np.random.Generator, *, test_only_share: float = 0.0,
             noise_rate: float = 0.0, n: int = 3) -> list[Sentence]:
    """``n`` different sentences for a track with ``truth`` {type, colour, manoeuvre} and true context ``ctx``."""
    out: list[Sentence] = []
    seen: set[str] = set()
    for _ in range(50 * n):
        if len(out) == n:
            break
        s = _one(truth, ctx, rng, rng.random() < test_only_share, noise_rate)
        key = s.text.lower()
        if key not in seen:
            seen.add(key)
            out.append(s)
    while len(out) < n:  # tiny vocabularies: allow repeats rather than fail
        out.append(_one(truth, ctx, rng, False, 0.0))
    return out


def _one(truth: dict[str, Any], ctx: dict[str, Any], rng: np.random.Generator, test_only: bool,
         noise_rate: float) -> Sentence:
    vtype, colour, man = truth["type"], truth["colour"], truth["manoeuvre"]
    noise: str | None = None
    if rng.random() < noise_rate:
        noise = "colour" if COLOURS[colour].near and rng.random() < 0.5 else "typo"
    said_colour = COLOURS[colour].near if noise == "colour" else colour
    assert said_colour is not None
    facts = _facts(ctx)
    phrases = [p for p in VERB_PHRASES[man] if p.needs <= facts and not p.test_only]
    verb_test_only = test_only and rng.random() < 0.5
    if verb_test_only:
        special = [p for p in VERB_PHRASES[man] if p.test_only and p.needs <= facts]
        phrase: Phrase = _pick(rng, special) if special else _pick(rng, phrases)
        verb_test_only = bool(special)
    else:
        phrase = _pick(rng, phrases)
    cw, tw, words_test_only = _vehicle_words(vtype, said_colour, rng, test_only and not verb_test_only)
    used_test_only = verb_test_only or words_test_only
    side = ctx.get("side") or "left"
    present = phrase.present.format(side=side)
    progressive = phrase.progressive.format(side=side)

    # Context clauses that hold in the render (each one is used by some annotators only).
    clauses: list[tuple[str, str]] = []
    if "junction" in facts and "intersection" not in present and rng.random() < 0.45:
        clauses.append(("junction", {"left": " at the intersection", "right": " at the intersection",
                                     "stop": " at the intersection"}.get(man, " through the intersection")))
    if "crosswalk" in facts and "crosswalk" not in present and rng.random() < 0.4:
        clauses.append(("crosswalk", " at the crosswalk"))
    lane = _lane_word(ctx)
    if lane and man in ("straight", "stop") and rng.random() < 0.2:
        clauses.append(("lane", f" in the {lane} lane"))
    if ctx.get("following") and rng.random() < 0.6:
        verb = _pick(rng, [" following ", " behind "])
        clauses.append(("following", f"{verb}{_other(ctx['following'], rng)}"))
    elif ctx.get("followed_by") and rng.random() < 0.6:
        clauses.append(("followed_by", f", followed by {_other(ctx['followed_by'], rng)}"))
    elif ctx.get("next_to") and rng.random() < 0.4:
        clauses.append(("next_to", f" next to {_other(ctx['next_to'], rng)}"))
    tail = "".join(c for _, c in clauses)

    subject_style = int(rng.integers(5))
    if subject_style == 0:
        subj = f"{cw.capitalize()} {tw}"
    elif subject_style == 1:
        subj = f"The {cw} {tw}"
    else:
        subj = f"{_article(cw).capitalize()} {cw} {tw}"
    template = int(rng.integers(6))
    if template in (0, 1, 2):
        text = f"{subj} {present}{tail}."
    elif template == 3:
        text = f"{subj} {progressive}{tail}."
    elif template == 4:
        text = f"{subj} is {progressive}{tail}."
    else:
        text = f"There is {_article(cw)} {cw} {tw} {progressive}{tail}."
    text = text.replace(" ,", ",")
    if noise == "typo":
        text = _typo(text, rng)
    return Sentence(text, noise, used_test_only, [name for name, _ in clauses])


def training_phrases() -> set[str]:
    """Every word sequence that can appear in training sentences (for the test-only wording check)."""
    out: set[str] = set()
    for ps in VERB_PHRASES.values():
        for p in ps:
            if not p.test_only:
                out.update({p.present, p.progressive})
    for t in TYPES.values():
        out.update(t.words)
    for c in COLOURS.values():
        out.update(c.words)
    return out
