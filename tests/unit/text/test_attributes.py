"""The attribute parser: hand-checked sentences, voting over a track, and accuracy on synthetic truth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lib.text.attributes import Attributes, measure_on_synthetic, parse_sentence, parse_track
from lib.text.augment import real_annotations_dir

CASES = [
    ("A red and white pick up truck turns left at the intersection.", ("red", "white"), "pickup", "left"),
    ("A blue car followed by a red van turns right.", ("blue",), "sedan", "right"),
    ("White sedan turning left to a light traffic street.", ("white",), "sedan", "left"),
    ("A silver sedan stops at the intersection and then goes straight.", ("silver",), "sedan", "stop"),
    ("A grey SUV stops, then turns left.", ("gray",), "suv", "left"),
    ("Black pickup truck passes the intersection without stopping.", ("black",), "pickup", "straight"),
    ("A small black sedan switches to the right lane.", ("black",), "sedan", "straight"),
    ("A red pickup truck going straight down the street with cars to the right.", ("red",), "pickup", "straight"),
    ("Car in the left lane goes straight.", (), "sedan", "straight"),
    ("A dark red MPV runs down the road.", ("maroon",), "van", "straight"),
    ("The orange sport utility vehicle turns rigth at the intersection.", ("orange",), "suv", "right"),
    ("A cargo truck is waiting at the crosswalk.", (), "box_truck", "stop"),
    ("A black big city bus turns lft at the intersection.", ("black",), "bus", "left"),
    ("A green pickup takes a letf.", ("green",), "pickup", "left"),
    ("The white midsize 4-door sedaan goes straigt.", ("white",), "sedan", "straight"),
    ("A red car let a bus pass and then stops.", ("red",), "sedan", "stop"),
    ("Light short right.", (), None, None),
    ("", (), None, None),
]


@pytest.mark.parametrize(("sentence", "colours", "vtype", "manoeuvre"), CASES)
def test_parse_sentence(sentence: str, colours: tuple[str, ...], vtype: str | None, manoeuvre: str | None) -> None:
    a = parse_sentence(sentence)
    assert (a.colours, a.vehicle_type, a.manoeuvre) == (colours, vtype, manoeuvre)


def test_locations_and_lane_change() -> None:
    a = parse_sentence("A black sedan turns left at the intersection and goes down the street.")
    assert a.locations == ("at the intersection", "down the street")
    b = parse_sentence("A gray sedan switches its lane to right.")
    assert b.lane_change and b.manoeuvre == "straight"
    assert not parse_sentence("A gray sedan in the right lane turns left.").lane_change


def test_parse_track_votes() -> None:
    t = parse_track(["A maroon SUV turns left.", "A red SUV makes a left turn.", "Maroon jeep goes straight."])
    assert t == Attributes(colours=("maroon",), vehicle_type="suv", manoeuvre="left", locations=())
    # ties go to the more specific manoeuvre; a second colour named by half of the sentences is kept
    t = parse_track(["A red and white bus stops.", "A red bus goes straight."])
    assert t.manoeuvre == "stop" and t.colours == ("red", "white") and t.colour == "red"
    assert parse_track([]) == Attributes()


def test_accuracy_on_synthetic_truth(tiny_dataset: Path) -> None:
    m = measure_on_synthetic(tiny_dataset)
    for split in ("train", "test"):
        # sentence level includes the generator's deliberate annotator noise (near colours, typos)
        assert m[split]["sentence_accuracy"]["type"] >= 0.95
        assert m[split]["sentence_accuracy"]["manoeuvre"] >= 0.95
        assert m[split]["sentence_accuracy"]["colour"] >= 0.85
        assert min(m[split]["track_accuracy"].values()) >= 0.95
    for split in ("train", "test"):
        assert min(m[split]["clean_sentence_accuracy"].values()) >= 0.97


@pytest.mark.skipif(not (real_annotations_dir() / "val.json").exists(), reason="real annotations absent")
def test_coverage_on_real_val_sentences() -> None:
    val = json.loads((real_annotations_dir() / "val.json").read_text())
    parsed = [parse_sentence(s) for t in val.values() for s in t["nl"]]
    n = len(parsed)
    assert sum(a.vehicle_type is not None for a in parsed) / n > 0.95
    assert sum(a.colour is not None for a in parsed) / n > 0.85
    assert sum(a.manoeuvre is not None for a in parsed) / n > 0.85
