"""What the synthetic world is made of: vehicle colours, vehicle types and manoeuvres, with their words.

Colours and types carry the words annotators use for them. Words flagged ``test_only`` never appear in training
sentences, only in test queries, so a benchmark measures generalisation to unseen phrasing.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Colour:
    name: str
    rgb: tuple[int, int, int]
    weight: float  # relative frequency (roughly the real data's)
    words: tuple[str, ...]
    near: str | None = None  # the colour annotators confuse it with
    test_only_words: tuple[str, ...] = ()


COLOURS: dict[str, Colour] = {c.name: c for c in (
    Colour("white", (234, 234, 230), 0.19, ("white",), near="beige"),
    Colour("black", (26, 27, 30), 0.16, ("black",), near="gray"),
    Colour("gray", (108, 111, 116), 0.11, ("gray", "grey", "dark gray"), near="silver", test_only_words=("charcoal",)),
    Colour("silver", (176, 181, 188), 0.10, ("silver", "light gray"), near="gray"),
    Colour("red", (198, 28, 30), 0.10, ("red",), near="maroon"),
    Colour("blue", (32, 66, 168), 0.09, ("blue", "dark blue"), near="black"),
    Colour("maroon", (108, 20, 34), 0.05, ("maroon", "dark red"), near="red", test_only_words=("burgundy",)),
    Colour("beige", (212, 196, 160), 0.04, ("beige", "tan"), near="white", test_only_words=("cream-colored",)),
    Colour("green", (36, 106, 58), 0.04, ("green", "dark green")),
    Colour("yellow", (230, 192, 36), 0.03, ("yellow",), near="orange"),
    Colour("brown", (104, 70, 42), 0.03, ("brown",), near="maroon"),
    Colour("orange", (226, 118, 30), 0.03, ("orange",), near="yellow"),
)}


@dataclass(frozen=True)
class VehicleType:
    """Dimensions in metres (length, width) and the words for it; the 3D shape lives in ``vehicles.py``."""

    name: str
    length: float
    width: float
    weight: float
    words: tuple[str, ...]
    size_words: tuple[str, ...]
    test_only_words: tuple[str, ...] = ()
    cruise: tuple[float, float] = (8.0, 13.0)  # cruise speed range, m/s


TYPES: dict[str, VehicleType] = {t.name: t for t in (
    VehicleType("sedan", 4.7, 1.85, 0.30, ("sedan", "car", "sedan car", "4-door sedan"), ("midsize", ""),
                test_only_words=("saloon car",)),
    VehicleType("suv", 4.8, 1.95, 0.24, ("SUV", "jeep", "sport utility vehicle"), ("midsize", "large", ""),
                test_only_words=("crossover",)),
    VehicleType("pickup", 5.6, 2.0, 0.12, ("pickup truck", "pickup", "pick up truck"), ("large", ""),
                test_only_words=("pick-up",)),
    VehicleType("hatchback", 4.0, 1.78, 0.10, ("hatchback", "small hatchback", "compact car"), ("small", ""),
                test_only_words=("hatch",)),
    VehicleType("van", 5.1, 2.0, 0.10, ("van", "minivan", "MPV"), ("", "large"),
                test_only_words=("people carrier",)),
    VehicleType("box_truck", 7.8, 2.45, 0.08, ("cargo truck", "box truck", "truck"), ("large", "big"),
                test_only_words=("delivery truck",), cruise=(7.0, 11.0)),
    VehicleType("bus", 11.5, 2.55, 0.06, ("bus", "city bus"), ("large", "big"),
                test_only_words=("coach",), cruise=(6.5, 10.0)),
)}

# Manoeuvres: what a track does in the view. ``lane_change`` exists only on multi-lane roads without a junction.
MANOEUVRES: tuple[str, ...] = ("straight", "left", "right", "stop", "lane_change")
# The manoeuvres used to build the difficulty blocks of a test split (present in every junction camera).
BLOCK_MANOEUVRES: tuple[str, ...] = ("straight", "left", "right", "stop")


@dataclass(frozen=True)
class Phrase:
    """A verb phrase in two forms (``turns left`` / ``turning left``)."""

    present: str
    progressive: str
    needs: frozenset[str] = field(default_factory=frozenset)  # context facts that must hold (e.g. "junction")
    test_only: bool = False


def _p(present: str, progressive: str, needs: tuple[str, ...] = (), test_only: bool = False) -> Phrase:
    return Phrase(present, progressive, frozenset(needs), test_only)


VERB_PHRASES: dict[str, tuple[Phrase, ...]] = {
    "straight": (
        _p("goes straight", "going straight"),
        _p("runs down the street", "running down the street"),
        _p("keeps straight", "keeping straight"),
        _p("drives straight ahead", "driving straight ahead"),
        _p("goes forward", "going forward"),
        _p("goes straight down the street", "going straight down the street"),
        _p("continues straight", "continuing straight"),
        _p("crosses the intersection", "crossing the intersection", ("junction",)),
        _p("goes straight through the intersection", "going straight through the intersection", ("junction",)),
        _p("proceeds straight ahead", "proceeding straight ahead", test_only=True),
        _p("cruises down the road", "cruising down the road", test_only=True),
    ),
    "left": (
        _p("turns left", "turning left"),
        _p("makes a left turn", "making a left turn"),
        _p("takes a left", "taking a left"),
        _p("turns to the left", "turning to the left"),
        _p("goes left at the intersection", "going left at the intersection", ("junction",)),
        _p("hangs a left", "hanging a left", test_only=True),
    ),
    "right": (
        _p("turns right", "turning right"),
        _p("makes a right turn", "making a right turn"),
        _p("takes a right", "taking a right"),
        _p("turns to the right", "turning to the right"),
        _p("goes right at the intersection", "going right at the intersection", ("junction",)),
        _p("hooks a right", "hooking a right", test_only=True),
    ),
    "stop": (
        _p("stops and then goes straight", "stopping and then going straight"),
        _p("waits at the intersection and then moves on", "waiting at the intersection and then moving on",
           ("junction",)),
        _p("stops at the crosswalk and then goes", "stopping at the crosswalk and then going", ("crosswalk",)),
        _p("comes to a stop before going straight", "coming to a stop before going straight"),
        _p("slows down to a stop, then drives on", "slowing down to a stop, then driving on"),
        _p("stops for a while and then keeps going", "stopping for a while and then keeping going"),
        _p("comes to a halt and then moves on", "coming to a halt and then moving on", test_only=True),
    ),
    "lane_change": (
        _p("changes lanes to the {side}", "changing lanes to the {side}"),
        _p("switches to the {side} lane", "switching to the {side} lane"),
        _p("moves over into the {side} lane", "moving over into the {side} lane"),
        _p("merges into the {side} lane", "merging into the {side} lane", test_only=True),
    ),
}


def colour_names() -> list[str]:
    return list(COLOURS)


def type_names() -> list[str]:
    return list(TYPES)
