"""The CityFlow-NL 2021 layout, shared by the real data and our synthetic copy.

``DATA_ROOT/{train,validation}/Sxx/cyyy/vdo.avi`` (frames extracted to ``.../img1/%06d.jpg`` from 1),
``train-tracks.json`` ``{uuid: {"frames": [...], "boxes": [[x, y, w, h], ...], "nl": [3 sentences]}}``,
``test-tracks.json`` (no ``nl``), ``test-queries.json`` ``{query_uuid: [3 sentences]}`` and, when available,
``test-gt.json`` ``{query_uuid: track_uuid}``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib.io import read_json


@dataclass(frozen=True)
class Layout:
    root: Path

    @classmethod
    def of(cls, root: str | os.PathLike[str]) -> Layout:
        return cls(Path(root).expanduser().resolve())

    @property
    def train_tracks(self) -> Path:
        return self.root / "train-tracks.json"

    @property
    def test_tracks(self) -> Path:
        return self.root / "test-tracks.json"

    @property
    def test_queries(self) -> Path:
        return self.root / "test-queries.json"

    @property
    def test_gt(self) -> Path:
        return self.root / "test-gt.json"

    def frame_path(self, rel: str) -> Path:
        return self.root / rel


def camera_of(frame_rel: str) -> str:
    """``train/S01/c001/img1/000001.jpg`` -> ``train/S01/c001``."""
    parts = Path(frame_rel).parts
    return "/".join(parts[:3])


def frame_index(frame_rel: str) -> int:
    """``.../img1/000123.jpg`` -> 123 (1-based, as in the file name)."""
    return int(Path(frame_rel).stem)


def load_tracks(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object {{track_uuid: track}}")
    return data


def load_queries(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object {{query_uuid: [sentences]}}")
    return data
