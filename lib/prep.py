"""The preparation folder of one dataset (``artifacts/prep/<dataset>/``): every derived-input path in one place.

Stages 02 and 03 write here, 04 and 05 read from here (docs/architecture.md):

- ``split.json`` — ``{"train": [ids], "val": [ids]}`` (stage 03, :func:`lib.text.split.write_split`);
- ``text/train-tracks_nlpaug.json``, ``text/test-queries_nlpaug.json`` — the subject-prefix augmented sentences
  (stage 03, :func:`lib.text.augment.prepare_text`);
- ``motion/<variant>/<track>.jpg`` and ``motion/<variant>/backgrounds/<camera>.jpg`` — motion maps and camera
  backgrounds (stage 02, :func:`lib.motion.build_motion_maps`);
- ``cache/`` — training caches (crops, motion maps at input size, frozen text features); safe to delete.
"""

from __future__ import annotations

import os
from pathlib import Path

from lib.errors import InputError, MissingInputError
from lib.io import path_in, read_json

SPLIT_FILE = "split.json"
TEXT_DIR = "text"
NLPAUG_TRAIN_TRACKS = "train-tracks_nlpaug.json"
NLPAUG_TEST_QUERIES = "test-queries_nlpaug.json"
MOTION_DIR = "motion"
BACKGROUNDS_DIR = "backgrounds"
CACHE_DIR = "cache"


def split_file(prep_dir: str | os.PathLike[str]) -> Path:
    return Path(prep_dir) / SPLIT_FILE


def text_dir(prep_dir: str | os.PathLike[str]) -> Path:
    return Path(prep_dir) / TEXT_DIR


def nlpaug_train_tracks(prep_dir: str | os.PathLike[str]) -> Path:
    """``PREP/text/train-tracks_nlpaug.json``: the training tracks with the augmented 4th sentence."""
    return text_dir(prep_dir) / NLPAUG_TRAIN_TRACKS


def nlpaug_test_queries(prep_dir: str | os.PathLike[str]) -> Path:
    """``PREP/text/test-queries_nlpaug.json``: the test queries with the augmented 4th sentence."""
    return text_dir(prep_dir) / NLPAUG_TEST_QUERIES


def motion_dir(prep_dir: str | os.PathLike[str], variant: str = "published") -> Path:
    """``PREP/motion/<variant>``: the motion maps of one variant (``published`` = the paper's rule)."""
    return Path(prep_dir) / MOTION_DIR / variant


def motion_map_file(prep_dir: str | os.PathLike[str], variant: str, track_uuid: str) -> Path:
    """``PREP/motion/<variant>/<track_uuid>.jpg`` (the id through :func:`lib.io.safe_name`: never outside)."""
    return path_in(motion_dir(prep_dir, variant), track_uuid, ".jpg")


def backgrounds_dir(motion_out: str | os.PathLike[str]) -> Path:
    """``<motion dir>/backgrounds``: the camera backgrounds of a motion-map run."""
    return Path(motion_out) / BACKGROUNDS_DIR


def cache_dir(prep_dir: str | os.PathLike[str]) -> Path:
    """``PREP/cache``: training caches, safe to delete."""
    return Path(prep_dir) / CACHE_DIR


def load_split(prep_dir: str | os.PathLike[str]) -> dict[str, list[str]]:
    """``{"train": [...], "val": [...]}`` from ``PREP/split.json`` (disjoint lists, checked)."""
    path = split_file(prep_dir)
    if not path.exists():
        raise MissingInputError(f"{path}: no train/val split (run 03_text_augmentation / python -m lib.text prepare)")
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected an object with fields 'train' and 'val'")
    for key in ("train", "val"):
        if not isinstance(data.get(key), list):
            raise InputError(f"{path}: missing list field {key!r} (expected {{'train': [...], 'val': [...]}})")
    overlap = set(data["train"]) & set(data["val"])
    if overlap:
        raise InputError(f"{path}: {len(overlap)} ids are in both 'train' and 'val', e.g. {sorted(overlap)[0]}")
    return {"train": list(data["train"]), "val": list(data["val"])}
