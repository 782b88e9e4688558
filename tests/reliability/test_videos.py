"""Videos are counted, not trusted: a truncated ``vdo.avi`` is an error of the validator (frame check) and of
``lib.frames`` naming the camera, how many frames decode and the tracks it breaks; the frames done-marker records
the video it was made from and is void when that video changes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from lib.cityflow import _count_frames_all, count_frames, validate_dataset
from lib.frames import MARKER, extract_dataset, read_marker
from tests.helpers.camera_dataset import make_mini_dataset

CAM = "train/S01/c001"


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mini_dataset(tmp_path_factory.mktemp("videos") / "data", n_frames=40, tracks_per_camera=2,
                             cameras=(CAM, "validation/S02/c006"))


def _truncate(video: Path) -> None:
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])


def _tracks_of(root: Path, cam: str) -> list[str]:
    tracks = json.loads((root / "train-tracks.json").read_text())
    return sorted(u for u, t in tracks.items() if t["frames"][0].startswith(cam))


def test_validator_counts_decodable_frames(good: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(good, root)
    assert count_frames(root / CAM / "vdo.avi") == 40
    assert validate_dataset(root, check_frames=True).ok
    _truncate(root / CAM / "vdo.avi")
    decoded = count_frames(root / CAM / "vdo.avi")
    assert 0 < decoded < 40
    report = validate_dataset(root, check_frames=True, raise_on_error=False)
    trunc = [p for p in report.errors if p.kind == "video_truncated"]
    assert len(trunc) == 1 and trunc[0].file == f"{CAM}/vdo.avi"
    msg = str(trunc[0])
    assert f"{decoded} of the 40 frames" in msg
    broken = [u for u in _tracks_of(root, CAM)
              if max(int(Path(f).stem) for f in json.loads((root / "train-tracks.json").read_text())[u]["frames"])
              > decoded]
    assert broken and all(u in msg for u in broken)


def test_videos_counted_together_give_each_ones_count(good: Path, tmp_path: Path) -> None:
    """The validator counts its cameras' videos in threads: each count is the one :func:`count_frames` gives alone,
    a truncated video's included."""
    root = tmp_path / "data"
    shutil.copytree(good, root)
    _truncate(root / CAM / "vdo.avi")
    videos = [root / CAM / "vdo.avi", root / "validation/S02/c006" / "vdo.avi"]
    alone = {v: count_frames(v) for v in videos}
    assert alone[videos[0]] < 40 and alone[videos[1]] == 40
    assert _count_frames_all(videos) == alone
    assert _count_frames_all(videos[:1]) == {videos[0]: alone[videos[0]]}


def test_frames_marker_is_void_when_the_video_changes(good: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(good, root)
    saved = (root / CAM / "vdo.avi").read_bytes()
    _truncate(root / CAM / "vdo.avi")
    rep = extract_dataset(root, workers=1, progress=False)
    kinds = {p.kind for p in rep.problems if p.camera == CAM}
    assert "video_truncated" in kinds and "video_too_short" in kinds
    trunc = next(p for p in rep.problems if p.kind == "video_truncated")
    assert CAM in trunc.message and "of the 40 frames" in trunc.message
    marker = read_marker(root / CAM)
    assert marker is not None and marker["header_frames"] == 40 and marker["n_frames"] < 40
    # rerun with the truncated video: still a problem (the marker remembers), nothing re-extracted
    rep = extract_dataset(root, workers=1, progress=False)
    assert any(p.kind == "video_truncated" for p in rep.problems)
    # the good video is back (new mtime): the marker is void, the camera is redone, no problem left
    (root / CAM / "vdo.avi").write_bytes(saved)
    st = (root / CAM / "vdo.avi").stat()
    os.utime(root / CAM / "vdo.avi", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    rep = extract_dataset(root, workers=1, progress=False)
    assert not rep.problems
    cam = next(c for c in rep.cameras if c.camera == CAM)
    assert cam.status == "extracted" and cam.n_frames == 40
    other = next(c for c in rep.cameras if c.camera != CAM)
    assert other.status == "skipped"
    assert (root / CAM / "img1" / MARKER).exists() and read_marker(root / CAM)["video"]["size"] == len(saved)
