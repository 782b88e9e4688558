"""The original train/val split: Python ``random.seed(888)``, shuffle the train-track ids (file order), first
``n_val`` (100) to val, the rest to train. Written as ``PREP/split.json`` ``{"train": [...], "val": [...]}``."""

from __future__ import annotations

import os
import random
from collections.abc import Sequence

from lib.io import read_json, write_json
from lib.prep import load_split, split_file  # noqa: F401  (load_split: the one reader)

SEED = 888
N_VAL = 100


def make_split(track_ids: Sequence[str], n_val: int = N_VAL, seed: int = SEED) -> dict[str, list[str]]:
    """Shuffle a copy of ``track_ids`` as ``random.seed(seed); random.shuffle(ids)`` did; first ``n_val`` -> val."""
    ids = list(track_ids)
    if len(set(ids)) != len(ids):
        raise ValueError("track ids are not unique")
    if n_val < 1 or n_val >= len(ids):
        raise ValueError(f"n_val={n_val} needs at least n_val + 1 train tracks, but there are {len(ids)}; "
                         f"pass a smaller n_val (the tiny preset needs one, e.g. n_val=8)")
    random.Random(seed).shuffle(ids)  # same sequence as random.seed(seed) then random.shuffle
    return {"train": ids[n_val:], "val": ids[:n_val]}


def write_split(data_root: str | os.PathLike[str], prep_dir: str | os.PathLike[str], n_val: int = N_VAL,
                seed: int = SEED) -> dict[str, list[str]]:
    """Split the dataset's ``train-tracks.json`` and write ``PREP/split.json``."""
    from lib.cityflow import Layout

    path = Layout.of(data_root).train_tracks
    tracks = read_json(path)
    if not isinstance(tracks, dict):
        raise ValueError(f"{path}: expected a JSON object {{track_uuid: track}}")
    try:
        split = make_split(list(tracks), n_val, seed)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    write_json(split_file(prep_dir), split)
    return split
