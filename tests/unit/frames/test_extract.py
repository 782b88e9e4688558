"""Frame extraction: numbering from 1, pixels of the video, resumability, --only-referenced, reported problems."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from lib import frames
from lib.frames import MARKER, extract_dataset, frame_file, main
from tests.helpers.camera_dataset import make_mini_dataset


def decode_video(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, f = cap.read()
        if not ok:
            return out
        out.append(f)


@pytest.fixture()
def mini(tmp_path: Path) -> Path:
    return make_mini_dataset(tmp_path / "data", n_frames=30)


@pytest.mark.parametrize("mode", ["auto", "reencode"])
def test_every_frame_numbered_from_one_with_the_video_pixels(mini: Path, mode: str) -> None:
    report = extract_dataset(mini, workers=2, mode=mode, progress=False)
    assert report.problems == []
    assert [c.status for c in report.cameras] == ["extracted"] * 3
    assert {c.mode for c in report.cameras} == {"copy" if mode == "auto" else "reencode"}
    for cam in ("train/S01/c001", "validation/S02/c006"):
        video = decode_video(mini / cam / "vdo.avi")
        files = sorted((mini / cam / "img1").glob("*.jpg"))
        assert [f.name for f in files] == [f"{i:06d}.jpg" for i in range(1, len(video) + 1)]
        for k in (0, 7, len(video) - 1):
            img = cv2.imread(str(files[k])).astype(int)
            diff = np.abs(img - video[k])
            # two JPEG decoders (FFmpeg's and libjpeg's) or one re-encoding apart: small differences only
            assert diff.mean() < 2.0, (cam, k, diff.mean())
            # and frame k is not frame k+1 (numbering is not shifted)
            if k + 1 < len(video):
                assert diff.mean() < np.abs(img - video[k + 1]).mean() or np.array_equal(video[k], video[k + 1])
        marker = json.loads((mini / cam / "img1" / MARKER).read_text())
        assert marker["n_frames"] == len(video) and marker["only_referenced"] is False


def test_copy_mode_writes_the_video_packets_bit_exact(mini: Path) -> None:
    extract_dataset(mini, workers=1, mode="copy", progress=False)
    cap = cv2.VideoCapture(str(mini / "train/S01/c002/vdo.avi"))
    cap.set(cv2.CAP_PROP_FORMAT, -1)
    ok, pkt = cap.read()
    assert ok
    assert frame_file(mini / "train/S01/c002", 1).read_bytes() == pkt.tobytes()


def test_resumable_done_cameras_skipped_half_written_redone(mini: Path) -> None:
    first = extract_dataset(mini, workers=1, progress=False)
    assert first.frames_written == 90
    again = extract_dataset(mini, workers=1, progress=False)
    assert [c.status for c in again.cameras] == ["skipped"] * 3 and again.frames_written == 0
    # a camera interrupted half-way: frames partly there, no marker -> redone entirely
    cam = mini / "train/S01/c002"
    (cam / "img1" / MARKER).unlink()
    for f in sorted((cam / "img1").glob("*.jpg"))[10:]:
        f.unlink()
    third = extract_dataset(mini, workers=1, progress=False)
    status = {c.camera: c.status for c in third.cameras}
    assert status == {"train/S01/c001": "skipped", "train/S01/c002": "extracted", "validation/S02/c006": "skipped"}
    assert len(list((cam / "img1").glob("*.jpg"))) == 30
    # no temporary files left behind by the atomic writes
    assert not [p for p in (cam / "img1").iterdir() if p.name.startswith(".") and p.name != MARKER]


def test_only_referenced_writes_referenced_frames_then_full_request_redoes(mini: Path) -> None:
    refs = frames.referenced_frames(mini)
    report = extract_dataset(mini, only_referenced=True, workers=1, progress=False)
    assert report.problems == []
    for cam, tracks in refs.items():
        wanted = {i for idx in tracks.values() for i in idx}
        got = {int(p.stem) for p in (mini / cam / "img1").glob("*.jpg")}
        assert got == wanted
    # asking again for referenced frames: done; asking for all: redone
    assert extract_dataset(mini, only_referenced=True, workers=1, progress=False).frames_written == 0
    full = extract_dataset(mini, workers=1, progress=False)
    assert full.frames_written == 90


def test_problems_named_by_camera_and_track(mini: Path) -> None:
    tracks = json.loads((mini / "train-tracks.json").read_text())
    uuid = next(u for u, t in tracks.items() if t["frames"][0].startswith("train/S01/c001"))
    tracks[uuid]["frames"].append("train/S01/c001/img1/000045.jpg")  # past the 30-frame video
    tracks[uuid]["boxes"].append([0, 0, 10, 10])
    (mini / "train-tracks.json").write_text(json.dumps(tracks))
    (mini / "train/S01/c002/vdo.avi").write_bytes(b"this is not a video")
    shutil.rmtree(mini / "validation/S02/c006")
    report = extract_dataset(mini, workers=2, progress=False)
    kinds = {(p.camera, p.kind, p.track) for p in report.problems}
    assert ("train/S01/c001", "video_too_short", uuid) in kinds
    assert any(c == "train/S01/c002" and k == "video_unreadable" for c, k, _ in kinds)
    assert any(c == "validation/S02/c006" and k == "video_missing" for c, k, _ in kinds)
    short = next(p for p in report.problems if p.kind == "video_too_short")
    assert "000045.jpg" in short.message and "30 frames" in short.message
    # the good frames were still extracted, the failed cameras carry no marker
    assert (mini / "train/S01/c001/img1/000030.jpg").exists()
    assert not (mini / "train/S01/c002/img1" / MARKER).exists()


def test_cli_exit_code_and_report(mini: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.json"
    assert main([str(mini), "--workers", "1", "--report", str(out)]) == 0
    assert json.loads(out.read_text())["frames_written"] == 90
    (mini / "train/S01/c001/img1" / MARKER).unlink()
    (mini / "train/S01/c001/vdo.avi").write_bytes(b"")
    assert main([str(mini), "--workers", "1"]) == 1
    assert "video_unreadable" in capsys.readouterr().err


def test_overview_figure(mini: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from lib.frames.figures import frames_overview

    fig = frames_overview(mini, extract_dataset(mini, workers=1, progress=False))
    assert len(fig.axes) == 4  # the bar chart and one frame per camera


def test_tiny_preset_extracts_every_referenced_frame(tiny_dataset: Path, tmp_path: Path) -> None:
    data = tmp_path / "tiny"
    shutil.copytree(tiny_dataset, data, ignore=shutil.ignore_patterns("img1"))
    report = extract_dataset(data, workers=2, progress=False)
    assert report.problems == [] and report.frames_written > 0
    for name in ("train-tracks.json", "test-tracks.json"):
        for t in json.loads((data / name).read_text()).values():
            assert (data / t["frames"][0]).exists() and (data / t["frames"][-1]).exists()
