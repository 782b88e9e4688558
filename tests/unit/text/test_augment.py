"""Subject-prefix augmentation: format, both JSON shapes, sentences without noun chunks, agreement with the authors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lib.paths import ROOT
from lib.text.augment import (
    PrefixStats,
    agreement,
    augment_entries,
    augment_file,
    load_sentences,
    prefix_group,
    prepare_text,
    real_annotations_dir,
    subject_prefix,
)
from lib.text.split import load_split

REAL = real_annotations_dir()


def test_prefix_format() -> None:
    out = subject_prefix(["A white SUV turns left.", "A white car makes a left.", "The white SUV goes straight."])
    assert out == ["A white SUV. A white SUV turns left.", "A white car. A white car makes a left.",
                   "The white SUV. The white SUV goes straight.", "A white SUV. A white car. The white SUV."]


def test_no_chunk_policies_never_crash() -> None:
    sents = ["Grey suv stopping.", "A red sedan turns right.", "Stopping.", ""]
    chunks = [None, "A red sedan", None, None]
    # previous: the first has nothing before it -> the sentence rule; later ones reuse the chunk before them
    out, last = prefix_group(sents, chunks, "previous")
    assert out[:4] == ["Grey suv stopping. Grey suv stopping.", "A red sedan. A red sedan turns right.",
                       "A red sedan. Stopping.", "A red sedan. "]
    assert out[4] == "Grey suv stopping. A red sedan. A red sedan. A red sedan." and last == "A red sedan"
    # a chunk carried in from the previous track
    out, _ = prefix_group(sents[:1], [None], "previous", previous="A blue van")
    assert out == ["A blue van. Grey suv stopping.", "A blue van."]
    out, _ = prefix_group(sents, chunks, "sentence")
    assert out[2] == "Stopping. Stopping." and out[3] == ""
    stats = PrefixStats()
    out, _ = prefix_group(sents, chunks, "skip", stats=stats)
    assert out == ["Grey suv stopping.", "A red sedan. A red sedan turns right.", "Stopping.", "", "A red sedan."]
    assert stats.no_chunk == 3 and stats.unprefixed == 3
    out, _ = prefix_group(["Stopping."], [None], "skip")
    assert out == ["Stopping.", "Stopping."]
    with pytest.raises(ValueError, match="no_chunk"):
        prefix_group(sents, chunks, "bogus")  # type: ignore[arg-type]
    # through the parser: a sentence without noun chunk in a real pipeline
    assert len(subject_prefix(["Grey suv stopping.", "Stopping."])) == 3


def test_both_shapes_and_carry_across_tracks(tmp_path: Path) -> None:
    tracks = {"t1": {"frames": ["f"], "boxes": [[0, 0, 1, 1]], "nl": ["A blue van goes straight."]},
              "t2": {"frames": ["g"], "boxes": [[0, 0, 1, 1]], "nl": ["Grey suv stopping."]}}
    queries = {"q1": ["A blue van goes straight."], "q2": ["Grey suv stopping."]}
    out_t, stats = augment_entries(tracks)
    assert out_t["t1"]["frames"] == ["f"] and out_t["t1"]["nl"] == ["A blue van. A blue van goes straight.",
                                                                     "A blue van."]
    assert out_t["t2"]["nl"][0] == "A blue van. Grey suv stopping."  # the original's variable outlived the track
    assert stats.reused_previous == 1
    out_q, _ = augment_entries(queries, carry_across_tracks=False)
    assert out_q["q2"] == ["Grey suv stopping. Grey suv stopping.", "Grey suv stopping."]
    (tmp_path / "q.json").write_text(json.dumps(queries))
    augment_file(tmp_path / "q.json", tmp_path / "q_aug.json")
    assert load_sentences(tmp_path / "q_aug.json")["q1"] == ["A blue van. A blue van goes straight.", "A blue van."]
    (tmp_path / "bad.json").write_text(json.dumps({"x": {"frames": []}}))
    with pytest.raises(ValueError, match=r"bad.json: entry x: expected a list of sentences or an object"):
        augment_file(tmp_path / "bad.json", tmp_path / "o.json")


@pytest.mark.skipif(not (REAL / "val_nlpaug.json").exists(), reason="real CityFlow-NL annotations absent")
def test_agreement_with_the_authors_val_output() -> None:
    a = agreement(REAL / "val.json", REAL / "val_nlpaug.json")
    assert a.prefixed_total == 300 and a.joined_total == 100
    # spaCy 3.8 small reproduces 264/300 of their spaCy 2.3 prefixes (measured); allow a little drift
    assert a.prefixed_rate >= 0.85, a.to_dict(5)
    assert a.joined_rate >= 0.6


@pytest.mark.skipif(not (REAL / "test-queries.json").exists(), reason="real CityFlow-NL annotations absent")
def test_cli_on_the_real_test_queries(tmp_path: Path) -> None:
    out = tmp_path / "test-queries_nlpaug.json"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lib.text", "augment", str(REAL / "test-queries.json"), str(out)],
                   cwd=ROOT, check=True, capture_output=True, timeout=120)
    elapsed = time.perf_counter() - t0
    data = json.loads(out.read_text())
    src = json.loads((REAL / "test-queries.json").read_text())
    assert list(data) == list(src) and all(len(data[k]) == len(src[k]) + 1 for k in src)
    assert all(data[k][0].endswith(". " + src[k][0]) for k in src)
    print(f"python -m lib.text augment on {len(src)} real queries: {elapsed:.1f} s")


def test_prepare_on_tiny(tiny_dataset: Path, tmp_path: Path) -> None:
    stats = prepare_text(tiny_dataset, tmp_path)
    train = json.loads((tiny_dataset / "train-tracks.json").read_text())
    aug = json.loads((tmp_path / "text" / "train-tracks_nlpaug.json").read_text())
    assert list(aug) == list(train) and stats["train"]["tracks"] == len(train)
    for k, t in train.items():
        assert aug[k]["frames"] == t["frames"] and len(aug[k]["nl"]) == len(t["nl"]) + 1
    q = load_sentences(tmp_path / "text" / "test-queries_nlpaug.json")
    assert len(q) == stats["queries"]["tracks"] > 0
    from lib.text.split import write_split

    write_split(tiny_dataset, tmp_path, n_val=8)
    split = load_split(tmp_path)
    assert len(split["val"]) == 8 and sorted(split["train"] + split["val"]) == sorted(train)
