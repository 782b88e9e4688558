"""The original train/val split."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from lib.text.split import load_split, make_split, write_split


def test_equals_the_original_global_random_shuffle() -> None:
    ids = [f"id{i:03d}" for i in range(250)]
    random.seed(888)
    shuffled = list(ids)
    random.shuffle(shuffled)
    split = make_split(ids)
    assert split["val"] == shuffled[:100] and split["train"] == shuffled[100:]
    assert make_split(ids, n_val=10)["val"] == shuffled[:10]
    assert ids == [f"id{i:03d}" for i in range(250)]  # input untouched


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_val=100 needs at least n_val \\+ 1 train tracks, but there are 60"):
        make_split([str(i) for i in range(60)])
    with pytest.raises(ValueError, match="not unique"):
        make_split(["a", "a", "b"], n_val=1)
    (tmp_path / "train-tracks.json").write_text(json.dumps({str(i): {} for i in range(5)}))
    with pytest.raises(ValueError, match="train-tracks.json: n_val=5"):
        write_split(tmp_path, tmp_path / "prep", n_val=5)
    (tmp_path / "split.json").write_text(json.dumps({"train": ["a", "b"], "val": ["b"]}))
    with pytest.raises(ValueError, match="in both 'train' and 'val'"):
        load_split(tmp_path)


def test_write_and_load(tmp_path: Path) -> None:
    (tmp_path / "train-tracks.json").write_text(json.dumps({str(i): {} for i in range(20)}))
    split = write_split(tmp_path, tmp_path / "prep", n_val=4)
    assert load_split(tmp_path / "prep") == split and len(split["val"]) == 4
