"""A rule-based attribute parser for vehicle descriptions: colour(s), vehicle type, manoeuvre, location phrases.

``parse_sentence(s)`` reads one sentence; ``parse_track(sentences)`` combines a track's (or query's) sentences by
vote. Both return :class:`Attributes`:

- ``colours`` — canonical colours of the *target* vehicle (those before its type noun, e.g. ``red and white pickup``
  -> ``("red", "white")``), never those of context vehicles (``followed by a red sedan``);
- ``vehicle_type`` — canonical type of the target (the first vehicle noun of the sentence): ``sedan``, ``suv``,
  ``pickup``, ``hatchback``, ``van``, ``box_truck``, ``bus`` (the synthetic generator's names) or ``wagon``;
- ``manoeuvre`` — ``straight`` / ``left`` / ``right`` / ``stop`` (``None`` when the sentence says nothing). A turn
  outranks a stop, which outranks going straight (``stops, then turns left`` -> ``left``; ``stops and then goes
  straight`` -> ``stop``). A lane change is not a turn: it sets ``lane_change=True`` and counts as ``straight``;
  ``in the left lane`` is a place, not a manoeuvre;
- ``locations`` — prepositional phrases naming a place (``at the intersection``, ``down the street``), lower case.

Words one typo away from a key word (``rigth``, ``straigt``, ``seedan``) are read as that word (:data:`TYPO_TARGETS`,
except common words such as ``light`` listed in :data:`NOT_TYPOS`).

Canonical colours and types follow ``lib/synthetic/vocab.py`` so the parser can be measured on synthetic sentences
(exact truth in ``DATA_ROOT/synthetic-labels.json``); the word lists also cover the real data's usual words
(``grey``, ``jeep``, ``mpv``, ``burgundy``, ...).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

MANOEUVRES: tuple[str, ...] = ("straight", "left", "right", "stop")

# phrase (lower case, words separated by single spaces) -> canonical colour; multi-word phrases win over words
COLOUR_WORDS: dict[str, str] = {
    "white": "white", "pearl": "white", "ivory": "white",
    "black": "black", "dark black": "black",
    "gray": "gray", "grey": "gray", "dark gray": "gray", "dark grey": "gray", "charcoal": "gray", "graphite": "gray",
    "silver": "silver", "light gray": "silver", "light grey": "silver", "silvery": "silver",
    "red": "red", "bright red": "red",
    "blue": "blue", "dark blue": "blue", "navy": "blue", "navy blue": "blue", "light blue": "blue",
    "maroon": "maroon", "dark red": "maroon", "burgundy": "maroon", "wine-colored": "maroon", "wine colored": "maroon",
    "dark-red": "maroon",
    "beige": "beige", "tan": "beige", "cream": "beige", "cream-colored": "beige", "cream colored": "beige",
    "green": "green", "dark green": "green", "light green": "green",
    "yellow": "yellow", "gold": "yellow", "golden": "yellow",
    "brown": "brown", "dark brown": "brown",
    "orange": "orange",
    "purple": "purple", "violet": "purple",
}
# phrase -> canonical vehicle type
TYPE_WORDS: dict[str, str] = {
    "sedan": "sedan", "car": "sedan", "sedan car": "sedan", "4-door sedan": "sedan", "4 door sedan": "sedan",
    "saloon": "sedan", "saloon car": "sedan", "coupe": "sedan", "coup": "sedan", "taxi": "sedan",
    "suv": "suv", "suvs": "suv", "jeep": "suv", "sport utility vehicle": "suv", "crossover": "suv",
    "cross-over": "suv", "cross over": "suv",
    "pickup": "pickup", "pickup truck": "pickup", "pick up truck": "pickup", "pick-up": "pickup",
    "pick-up truck": "pickup", "pick up": "pickup",
    "hatchback": "hatchback", "hatch": "hatchback", "compact car": "hatchback", "small hatchback": "hatchback",
    "mini cooper": "hatchback", "mini-cooper": "hatchback",
    "van": "van", "minivan": "van", "mini van": "van", "mini-van": "van", "mpv": "van", "van/mpv": "van",
    "cargo van": "van", "people carrier": "van",
    "truck": "box_truck", "cargo truck": "box_truck", "box truck": "box_truck", "delivery truck": "box_truck",
    "semi": "box_truck", "semi-truck": "box_truck", "semi truck": "box_truck", "tractor-trailer": "box_truck",
    "tractor trailer": "box_truck", "trailer": "box_truck", "flatbed": "box_truck", "lorry": "box_truck",
    "bus": "bus", "city bus": "bus", "coach": "bus", "school bus": "bus",
    "wagon": "wagon", "station wagon": "wagon",
}
# nouns that end the target's noun phrase without naming a type
GENERIC_VEHICLE = {"vehicle", "automobile", "vechicle"}

_CONTEXT = r"(?:followed|following|follows|behind|after|next to|alongside|beside|passing|passes|past|overtak\w*|" \
           r"with|between|among|in front of|ahead of|trailing)"
_TURN_VERB = r"(?:turn\w*|made|make\w*|mak\w*|take\w*|taking|took|go\w*|went|hang\w*|hook\w*|veer\w*|bear\w*|" \
             r"head\w*|swing\w*|curv\w*)"
_LANE = re.compile(r"\b(?:chang\w*|switch\w*|mov\w*(?: over)?|merg\w*|shift\w*)\s+(?:(?:its|the|a|lanes?)\s+)*"
                   r"(?:(?:to|into|in)\s+)?(?:the\s+)?(?:left|right)(?:[- ]?(?:hand|most))?(?:\s+lanes?)?\b"
                   r"|\bchang\w*\s+(?:its\s+|the\s+)?lanes?\b|\blane change\b")
_LANE_PLACE = re.compile(r"\b(?:the|a|an|its)\s+(?:\w+\s+)?(?:left|right)(?:[- ]?(?:hand|most))?(?:\s+side)?"
                         r"\s+(?:lanes?|side|shoulder|curb|sidewalk)\b|\b(?:left|right)[- ]?(?:hand|most)\b"
                         r"|\bon (?:the|its) (?:left|right)\b|\bto (?:the|its) (?:left|right) of\b")
_NOT_STOP = re.compile(r"\b(?:without|never|not|no|non)[- ](?:\w+ )?(?:stop\w*|halt\w*)\b")


def _side_turn(side: str) -> re.Pattern[str]:
    return re.compile(rf"\b{_TURN_VERB}\s+(?:\w+\s+)?(?:a\s+|to the\s+|the\s+)?{side}\b|\b{side}[- ]?turn\w*\b|"
                      rf"\ba\s+{side}\b(?!\s+(?:lane|side))|\b{side}ward\w*\b|\b{side}\s+(?:onto|into)\b")


_LEFT = _side_turn("left")
_RIGHT = _side_turn("right")
_STOP = re.compile(r"\b(?:stop(?:s|ped|ping|ing)?|stoped|halt\w*|wait\w*|park(?:s|ed|ing)?|idl\w*|paus\w*|"
                   r"standstill|come to a stop|comes to a stop)\b(?!\s+(?:sign|light)s?\b)")
_STRAIGHT = re.compile(r"\b(?:straight\w*|forwards?|ahead|cruis\w*|continu\w*|proceed\w*|keeps? going|pass\w*|"
                       r"(?:runs?|running|ran|drives?|driving|drove|goes|going|went|travels?|travell?ing|moves?|"
                       r"moving|heads?|heading|speeds?|speeding)\s+(?:down|along|up|through|across|on|towards?)|cross\w*|through)\b")
_PLACE_NOUNS = (r"intersection|crossroads?|junction|crosswalk|street|road|highway|freeway|interstate|avenue|lane|"
                r"parking lot|parking|lot|hill|curve|corner|traffic light|stop sign|stoplight|sidewalk|bridge|"
                r"roundabout|gas station|post office|driveway|exit|ramp|tunnel|fork")
_LOCATION = re.compile(rf"\b(?:at|in|on|onto|into|through|down|up|across|along|near|toward|towards|before|after|"
                       rf"past|from|over|under|around|to)\s+(?:the|a|an|another|its)?\s*(?:[\w-]+\s+){{0,2}}?"
                       rf"(?:{_PLACE_NOUNS})\b")


@dataclass(frozen=True)
class Attributes:
    colours: tuple[str, ...] = ()
    vehicle_type: str | None = None
    manoeuvre: str | None = None
    locations: tuple[str, ...] = ()
    lane_change: bool = False

    @property
    def colour(self) -> str | None:
        """The main colour (the first named), or ``None``."""
        return self.colours[0] if self.colours else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Annotators' typos (``rigth``, ``straigt``, ``seedan``, ``letf``): a word one edit (insertion, deletion,
# substitution or swap of neighbours) away from exactly one of these is read as it, unless it is a common word of its
# own. For the short ``left`` only a swap or a missing letter counts (``loft``, ``lift`` and ``let`` are words).
TYPO_TARGETS: tuple[str, ...] = ("straight", "right", "left", "sedan", "pickup", "hatchback", "minivan", "truck",
                                 "silver", "yellow", "orange", "maroon", "purple", "intersection", "turns", "turning")
NOT_TYPOS: frozenset[str] = frozenset({
    "light", "night", "sight", "fight", "tight", "eight", "might", "bright", "wright", "rights", "track", "trick",
    "struck", "trucks", "trunk", "trunks", "mellow", "hellow", "sedans", "pickups", "turn", "tuns", "burns",
    "terns", "tunes", "turnip", "burning", "curving", "let", "lefts",
})


def _edit_kind(a: str, b: str) -> str | None:
    """How ``a`` differs from ``b`` by one edit: ``swap``, ``substitution``, ``missing``/``extra`` letter, or
    ``None`` (equal, or further apart)."""
    if a == b or abs(len(a) - len(b)) > 1:
        return None
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return "substitution"
        if len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]:
            return "swap"
        return None
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    if short[i:] != long_[i + 1:]:
        return None
    return "missing" if len(a) < len(b) else "extra"


def _correct(word: str) -> str:
    if len(word) < 3 or word in NOT_TYPOS or word in TYPO_TARGETS:
        return word
    hits = []
    for t in TYPO_TARGETS:
        kind = _edit_kind(word, t)
        if kind and (len(t) >= 5 and len(word) >= 5 or kind in ("swap", "missing") and len(word) >= 3):
            hits.append(t)
    return hits[0] if len(hits) == 1 else word


def _normalise(s: str) -> str:
    s = s.lower().replace("&", " and ").replace("/", " / ")
    s = re.sub(r"[^\w\s'/-]", " ", s)
    return " ".join(_correct(w) for w in s.split())


def _phrase_regex(words: dict[str, str]) -> re.Pattern[str]:
    alts = sorted(words, key=lambda w: (-len(w.split()), -len(w)))
    return re.compile(r"(?<![\w-])(" + "|".join(re.escape(w) for w in alts) + r")(?![\w-])")


_COLOUR_RE = _phrase_regex(COLOUR_WORDS)
_TYPE_RE = _phrase_regex({**TYPE_WORDS, **{w: "" for w in GENERIC_VEHICLE}})
_CONTEXT_RE = re.compile(rf"\b{_CONTEXT}\b")


def _subject_span(text: str) -> tuple[int, str | None]:
    """End of the target's noun phrase and its type: the first vehicle noun before any context phrase."""
    ctx = _CONTEXT_RE.search(text)
    limit = ctx.start() if ctx else len(text)
    m = _TYPE_RE.search(text, 0, limit)
    if m is None:
        return limit, None
    vtype = TYPE_WORDS.get(m.group(1)) or None
    return m.end(), vtype


def manoeuvre_of(text: str) -> tuple[str | None, bool]:
    """``(manoeuvre, lane_change)`` of a normalised sentence."""
    lane_change = bool(_LANE.search(text))
    t = _LANE.sub(" ", text)
    t = _LANE_PLACE.sub(" ", t)
    left, right = _LEFT.search(t), _RIGHT.search(t)
    if left and right:
        return ("left" if left.start() < right.start() else "right"), lane_change
    if left:
        return "left", lane_change
    if right:
        return "right", lane_change
    if _STOP.search(_NOT_STOP.sub(" ", t)):
        return "stop", lane_change
    if _STRAIGHT.search(t) or lane_change:
        return "straight", lane_change
    return None, lane_change


def parse_sentence(s: str) -> Attributes:
    """Attributes of one sentence (see the module docstring)."""
    text = _normalise(s)
    end, vtype = _subject_span(text)
    colours: list[str] = []
    for m in _COLOUR_RE.finditer(text, 0, end):
        c = COLOUR_WORDS[m.group(1)]
        if c not in colours:
            colours.append(c)
    manoeuvre, lane_change = manoeuvre_of(text)
    locations: list[str] = []
    for m in _LOCATION.finditer(text):
        phrase = m.group(0).strip()
        if phrase not in locations:
            locations.append(phrase)
    return Attributes(tuple(colours), vtype, manoeuvre, tuple(locations), lane_change)


_SPECIFICITY = {"left": 3, "right": 3, "stop": 2, "straight": 1}


def vote(parsed: Sequence[Attributes]) -> Attributes:
    """Vote over several sentences' attributes: majority type and manoeuvre (ties: the more specific manoeuvre,
    then the first named), colours named by at least half of the sentences that name one (else the most named)."""
    types = Counter(a.vehicle_type for a in parsed if a.vehicle_type)
    vtype = None
    if types:
        best = max(types.values())
        vtype = next(a.vehicle_type for a in parsed if a.vehicle_type and types[a.vehicle_type] == best)
    mans = Counter(a.manoeuvre for a in parsed if a.manoeuvre)
    manoeuvre = None
    if mans:
        best = max(mans.values())
        manoeuvre = max((m for m in mans if mans[m] == best), key=lambda m: _SPECIFICITY[m])
    with_colour = [a for a in parsed if a.colours]
    colours: tuple[str, ...] = ()
    if with_colour:
        first = Counter(a.colours[0] for a in with_colour)
        counts = Counter(c for a in with_colour for c in a.colours)
        order = {c: i for i, c in enumerate(dict.fromkeys(c for a in with_colour for c in a.colours))}
        main = max(first, key=lambda c: (first[c], counts[c], -order[c]))
        others = [c for c in counts if c != main and 2 * counts[c] >= len(with_colour)]
        colours = (main, *sorted(others, key=lambda c: (-counts[c], order[c])))
    locations = tuple(dict.fromkeys(loc for a in parsed for loc in a.locations))
    lane_change = sum(a.lane_change for a in parsed) * 2 > len(parsed)
    return Attributes(colours, vtype, manoeuvre, locations, lane_change)


def parse_track(sentences: Sequence[str]) -> Attributes:
    """Attributes of a track or query from all of its sentences together (vote, see :func:`combine`)."""
    return vote([parse_sentence(s) for s in sentences])


# ---------------------------------------------------------------------------------------------------------------
# Measuring the parser on synthetic data (exact truth)


def expected_manoeuvre(label: str) -> str:
    """The parser's class for a synthetic manoeuvre label (a lane change counts as going straight)."""
    return "straight" if label == "lane_change" else label


def measure_on_synthetic(data_root: str | Any) -> dict[str, Any]:
    """Accuracy of the parser against ``synthetic-labels.json``, per sentence and per track (vote of its
    sentences), on train-track sentences and test queries (via ``test-gt.json``): on all sentences, on those without
    annotator noise (``clean``) and on those with wording reserved for test queries; with confusion examples."""
    from pathlib import Path

    from lib.io import read_json

    root = Path(data_root)
    labels = read_json(root / "synthetic-labels.json")
    groups: list[tuple[str, str, list[str]]] = []  # (split, track uuid, sentences)
    for uuid, t in read_json(root / "train-tracks.json").items():
        groups.append(("train", uuid, t["nl"]))
    gt_path = root / "test-gt.json"
    if gt_path.exists():
        gt = read_json(gt_path)
        for qid, sents in read_json(root / "test-queries.json").items():
            if qid in gt:
                groups.append(("test", gt[qid], sents))
    fields_ = ("colour", "type", "manoeuvre")
    out: dict[str, Any] = {}
    examples: list[dict[str, Any]] = []
    for split in ("train", "test"):
        sel = [g for g in groups if g[0] == split]
        if not sel:
            continue
        s_ok = dict.fromkeys(fields_, 0)
        c_ok = dict.fromkeys(fields_, 0)  # on sentences without annotator noise
        o_ok = dict.fromkeys(fields_, 0)  # on sentences with wording reserved for test queries
        t_ok = dict.fromkeys(fields_, 0)
        n_s = n_clean = n_only = 0
        for _, uuid, sents in sel:
            lab = labels[uuid]
            truth = {"colour": lab["colour"], "type": lab["type"], "manoeuvre": expected_manoeuvre(lab["manoeuvre"])}
            parsed = [parse_sentence(s) for s in sents]
            meta = lab.get("sentences") or []  # per sentence of the track (train) or of its query (test)
            for j, (s, a) in enumerate(zip(sents, parsed)):
                n_s += 1
                m = meta[j] if j < len(meta) and isinstance(meta[j], dict) else {}
                noisy = bool(m.get("noise")) if m else None
                test_only = bool(m.get("test_only"))
                n_clean += noisy is False
                n_only += test_only
                got = {"colour": a.colour, "type": a.vehicle_type, "manoeuvre": a.manoeuvre}
                for f in fields_:
                    s_ok[f] += got[f] == truth[f]
                    c_ok[f] += noisy is False and got[f] == truth[f]
                    o_ok[f] += test_only and got[f] == truth[f]
                    if got[f] != truth[f] and len(examples) < 30:
                        examples.append({"split": split, "field": f, "truth": truth[f], "parsed": got[f],
                                         "sentence": s})
            tr = vote(parsed)
            got = {"colour": tr.colour, "type": tr.vehicle_type, "manoeuvre": tr.manoeuvre}
            for f in fields_:
                t_ok[f] += got[f] == truth[f]
        out[split] = {"sentences": n_s, "tracks": len(sel),
                      "sentence_accuracy": {f: s_ok[f] / n_s for f in fields_},
                      "clean_sentences": n_clean,
                      "clean_sentence_accuracy": {f: c_ok[f] / n_clean for f in fields_} if n_clean else None,
                      "test_only_wording_sentences": n_only,
                      "test_only_wording_accuracy": {f: o_ok[f] / n_only for f in fields_} if n_only else None,
                      "track_accuracy": {f: t_ok[f] / len(sel) for f in fields_}}
    out["errors"] = examples
    return out
