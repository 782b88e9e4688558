"""Preprocessing benchmarks (``make bench``; ``run(quick)`` -> list of result dicts), on the ``default`` synthetic
preset (``tiny`` when quick), generated into ``artifacts/data/<preset>`` if absent.

1. ``motion_maps``: background + published motion map of every train and test track. Ours: ``lib.motion.maps`` (tracks
   grouped by camera, each needed frame decoded once, cameras in parallel processes). Baseline:
   ``lib.motion.reference`` (the original's two scripts, literally: one pass per camera for the background, then
   per track the background and every frame of the track decoded again, every 7th pasted). Both outputs are
   compared (byte-identical files / max pixel difference); ``ours_one_process_s`` times ours in one process (the
   gain of reading once and composing per box, without the parallel cameras).
2. ``frame_extraction``: every frame of every camera to ``img1/%06d.jpg``. Ours: ``lib.frames`` (cameras in
   parallel, MJPEG packets copied). Baseline: a plain one-process loop (``cv2.VideoCapture.read`` +
   ``cv2.imwrite``). The details also time ours in ``reencode`` mode (parallelism alone).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _dataset(preset: str) -> Path:
    from lib.frames import extract_dataset
    from lib.paths import data_dir

    root = data_dir(preset)
    if not (root / "dataset.json").exists():
        from lib.synthetic import generate

        generate(preset=preset, seed=0, out=root)
    report = extract_dataset(root, progress=False)  # full extraction (the background needs every frame)
    if report.problems:
        raise RuntimeError(f"{root}: frame extraction problems: {report.problems[:3]}")
    return root


def _compare_dirs(a: Path, b: Path) -> dict[str, Any]:
    import cv2

    files = sorted(p.relative_to(b) for p in b.rglob("*.jpg"))
    identical = 0
    max_diff = 0
    for rel in files:
        x, y = (a / rel).read_bytes(), (b / rel).read_bytes()
        if x == y:
            identical += 1
            continue
        ia = cv2.imdecode(np.frombuffer(x, np.uint8), cv2.IMREAD_COLOR).astype(int)
        ib = cv2.imdecode(np.frombuffer(y, np.uint8), cv2.IMREAD_COLOR).astype(int)
        max_diff = max(max_diff, int(np.abs(ia - ib).max()))
    return {"files": len(files), "byte_identical": identical, "max_pixel_diff_others": max_diff}


def _baseline_reads(root: Path) -> int:
    """Frames the original way decodes: background samples + per track its background and EVERY frame of the track
    (the original script reads each frame inside its loop and pastes every 7th)."""
    from lib.io import read_json
    from lib.motion.maps import background_positions

    tracks = {**read_json(root / "train-tracks.json"), **read_json(root / "test-tracks.json")}
    cams = {"/".join(Path(t["frames"][0]).parts[:3]) for t in tracks.values()}
    n = sum(len(background_positions(len(list((root / c / "img1").glob("*.jpg"))))) for c in cams)
    return n + sum(1 + len(t["frames"]) for t in tracks.values())


def _warm_cache(root: Path) -> int:
    """Read every extracted frame once so that neither side pays for cold disk reads."""
    n = 0
    for p in root.glob("*/S*/c*/img1/*.jpg"):
        n += len(p.read_bytes())
    return n


def bench_motion(root: Path, tmp: Path) -> dict[str, Any]:
    from lib.io import machine_info
    from lib.motion.maps import build_motion_maps
    from lib.motion.reference import build_reference

    _warm_cache(root)
    machine_info()  # imports torch once (run_info.json records its version): a one-time cost of the process
    t0 = time.perf_counter()
    report = build_motion_maps(root, tmp / "ours", force=True, progress=False)
    ours = time.perf_counter() - t0
    if report.problems:
        raise RuntimeError(f"motion maps failed: {report.problems[:3]}")
    t0 = time.perf_counter()
    n = build_reference(root, tmp / "ref")
    base = time.perf_counter() - t0
    t0 = time.perf_counter()
    build_motion_maps(root, tmp / "ours_1proc", force=True, workers=1, threads=1, progress=False)
    ours_1proc = time.perf_counter() - t0
    d = report.to_dict()
    track_frames = sum(c.n_frames for c in report.cameras)
    return {"name": "motion_maps", "ours_s": ours, "baseline_s": base, "ratio": base / ours,
            "details": {"dataset": str(root), "tracks": n, "cameras": d["n_cameras"], "camera_frames": track_frames,
                        "frames_decoded_ours": d["frames_read"], "frames_decoded_baseline": _baseline_reads(root),
                        "maps_per_s_ours": n / ours, "maps_per_s_baseline": n / base,
                        "camera_frames_per_s_ours": track_frames / ours,
                        "camera_frames_per_s_baseline": track_frames / base,
                        "ours_one_process_s": ours_1proc, "ratio_one_process": base / ours_1proc,
                        "workers": os.cpu_count(), "same_outputs": _compare_dirs(tmp / "ours", tmp / "ref")}}


def _plain_extract(root: Path) -> int:
    """The straightforward way: one process, decode every frame and write it with cv2.imwrite."""
    import cv2

    n = 0
    for video in sorted(root.glob("*/S*/c*/vdo.avi")):
        out = video.parent / "img1"
        out.mkdir(exist_ok=True)
        cap = cv2.VideoCapture(str(video))
        i = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            i += 1
            cv2.imwrite(str(out / f"{i:06d}.jpg"), frame)
        cap.release()
        n += i
    return n


def _video_tree(src: Path, dst: Path) -> Path:
    """A copy of the dataset's track files with its videos linked (frames are extracted beside them)."""
    for p in src.glob("*/S*/c*/vdo.avi"):
        d = dst / p.parent.relative_to(src)
        d.mkdir(parents=True, exist_ok=True)
        os.symlink(p, d / "vdo.avi")
    for name in ("train-tracks.json", "test-tracks.json"):
        shutil.copy(src / name, dst / name)
    return dst


def bench_frames(root: Path, tmp: Path) -> dict[str, Any]:
    from lib.frames import extract_dataset

    t0 = time.perf_counter()
    report = extract_dataset(_video_tree(root, tmp / "ours"), progress=False)
    ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    reenc = extract_dataset(_video_tree(root, tmp / "reencode"), mode="reencode", progress=False)
    ours_reencode = time.perf_counter() - t0
    t0 = time.perf_counter()
    n = _plain_extract(_video_tree(root, tmp / "plain"))
    base = time.perf_counter() - t0
    if report.frames_written != n or reenc.frames_written != n:
        raise RuntimeError(f"frame counts differ: ours {report.frames_written}, reencode {reenc.frames_written}, "
                           f"plain {n}")
    return {"name": "frame_extraction", "ours_s": ours, "baseline_s": base, "ratio": base / ours,
            "details": {"dataset": str(root), "frames": n, "cameras": len(report.cameras),
                        "modes": sorted({c.mode for c in report.cameras}), "frames_per_s_ours": n / ours,
                        "frames_per_s_baseline": n / base, "ours_reencode_s": ours_reencode,
                        "ratio_reencode": base / ours_reencode, "workers": os.cpu_count()}}


def run(quick: bool = False) -> list[dict[str, Any]]:
    from lib.paths import artifacts_dir

    root = _dataset("tiny" if quick else "default")
    base = artifacts_dir() / "tmp"
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench_preprocess_", dir=base) as d:
        tmp = Path(d)
        return [bench_motion(root, tmp / "motion"), bench_frames(root, tmp / "frames")]


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
