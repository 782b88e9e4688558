"""Frame extraction: every camera's ``vdo.avi`` to ``img1/%06d.jpg`` (numbered from 1), cameras in parallel.

Modes (``mode``):

- ``copy`` — for Motion-JPEG videos (our synthetic data) every video packet already *is* a JPEG file: it is written
  as is, so the extracted frame decodes to exactly the pixels a JPEG decoder gives for the video frame, with no
  second lossy encoding, at a fraction of the cost. Checked on the first packet (it must decode to the frame size)
  and on the packet count (it must equal the container's frame count); a camera that fails a check is re-encoded.
- ``reencode`` — decode with OpenCV and encode each frame with ``cv2.imencode`` (JPEG quality ``jpeg_quality``),
  as the original's ``ffmpeg -i vdo.avi img1/%06d.jpg`` did (it re-encoded too).
- ``auto`` (default) — ``copy`` where possible, else ``reencode``. The mode used is recorded per camera.

Resumable: each JPEG is written atomically, and a camera's marker ``img1/.frames_done.json`` is written last; a camera
with a marker that covers the request is skipped, any other camera (never started, or interrupted half-way) is redone.
The marker records the video it was made from (size and modification time, :func:`video_signature`): when the
video changes (a truncated copy replaced by the good one, a re-download), the marker is void and the camera redone.

Videos are counted, not trusted: the frame count is the number of frames that decode (``grab()`` to the end), not the
container's header. A video that decodes fewer frames than its header announces is recorded as truncated
(``header_frames`` in the marker); when it lacks frames that tracks reference, it is a problem naming the camera, how
many frames decode and the tracks it breaks.

``only_referenced`` writes only the frames some track of ``train-tracks.json`` / ``test-tracks.json`` references
(note: the motion-map background needs all frames, so use the full extraction before ``lib.motion.maps``).

Problems are collected, not raised, and named by camera and track: a video that is missing or does not open, and a
video shorter than the frames a track references.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from lib.cityflow import Layout, camera_of, frame_index
from lib.errors import InputError, MissingInputError
from lib.io import force_requested, read_json, write_bytes, write_json

Mode = Literal["auto", "copy", "reencode"]
MARKER = ".frames_done.json"
VIDEO = "vdo.avi"
# starting a worker process costs about a second: below this much video per worker, fewer processes are faster
BYTES_PER_WORKER = 32 * 2**20


def auto_workers(requested: int | None, n_jobs: int, max_useful: int) -> int:
    """``requested`` processes (capped by the number of jobs), or by default the CPU count capped by the jobs and by
    ``max_useful`` (small datasets run in-process: starting workers would cost more than it saves)."""
    if requested:
        return max(1, min(requested, n_jobs))
    return max(1, min(os.cpu_count() or 1, n_jobs, max_useful))


@dataclass(frozen=True)
class Problem:
    """Something wrong with the input, named by camera (and track where one is involved)."""

    camera: str
    kind: str  # video_missing | video_unreadable | video_too_short
    message: str
    track: str | None = None


@dataclass
class CameraResult:
    camera: str
    status: str  # extracted | skipped | failed
    mode: str = ""
    n_frames: int = 0  # frames that decode
    written: int = 0
    seconds: float = 0.0
    error: str | None = None
    header_frames: int = 0  # what the container's header announces (more than n_frames: truncated)


@dataclass
class FramesReport:
    data_root: str
    only_referenced: bool
    cameras: list[CameraResult] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def frames_written(self) -> int:
        return sum(c.written for c in self.cameras)

    def to_dict(self) -> dict[str, Any]:
        return {
            "data_root": self.data_root, "only_referenced": self.only_referenced, "seconds": self.seconds,
            "n_cameras": len(self.cameras),
            "extracted": sum(c.status == "extracted" for c in self.cameras),
            "skipped": sum(c.status == "skipped" for c in self.cameras),
            "failed": sum(c.status == "failed" for c in self.cameras),
            "frames_written": self.frames_written,
            "cameras": [asdict(c) for c in self.cameras], "problems": [asdict(p) for p in self.problems],
        }


# ---------------------------------------------------------------------------------------------------------------
# What exists and what the tracks need


def find_cameras(data_root: str | os.PathLike[str]) -> list[str]:
    """Relative camera folders (``train/S01/c001``) that hold a ``vdo.avi``, sorted."""
    root = Path(data_root)
    return sorted(str(p.parent.relative_to(root).as_posix()) for p in root.glob(f"*/S*/c*/{VIDEO}"))


def track_files(data_root: str | os.PathLike[str]) -> list[Path]:
    layout = Layout.of(data_root)
    return [p for p in (layout.train_tracks, layout.test_tracks) if p.exists()]


def referenced_frames(data_root: str | os.PathLike[str]) -> dict[str, dict[str, list[int]]]:
    """``{camera: {track_uuid: [1-based frame indices]}}`` for every track of the dataset's track files."""
    out: dict[str, dict[str, list[int]]] = defaultdict(dict)
    for path in track_files(data_root):
        for uuid, track in read_json(path).items():
            frames = track.get("frames") if isinstance(track, dict) else None
            if not isinstance(frames, list) or not frames:
                raise InputError(f"{path}: track {uuid}: field 'frames' must be a non-empty list")
            for rel in frames:
                cam = camera_of(rel)
                out[cam].setdefault(uuid, []).append(frame_index(rel))
    return dict(out)


def frame_file(camera_dir: Path, index: int) -> Path:
    """The extracted JPEG of 1-based frame ``index``."""
    return camera_dir / "img1" / f"{index:06d}.jpg"


def read_marker(camera_dir: Path) -> dict[str, Any] | None:
    path = camera_dir / "img1" / MARKER
    if not path.exists():
        return None
    try:
        return read_json(path)
    except ValueError:
        return None


def video_signature(video: Path) -> dict[str, int] | None:
    """``{"size", "mtime_ns"}`` of a video (``None`` when absent): what a marker was made from."""
    try:
        st = video.stat()
    except OSError:
        return None
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


def marker_covers(marker: dict[str, Any] | None, wanted: set[int] | None,
                  video: dict[str, int] | None | str = "unchecked") -> bool:
    """Whether a finished extraction (its marker) already holds every frame requested (``None`` = all), made from
    the video whose :func:`video_signature` is ``video`` (a marker of another, or of no recorded, video is void)."""
    if not marker:
        return False
    if video != "unchecked" and (video is None or marker.get("video") != video):
        return False
    if not marker.get("only_referenced"):
        return True
    if wanted is None:
        return False
    n = int(marker.get("n_frames", 0))
    return {i for i in wanted if i <= n} <= set(marker.get("frames", []))


# ---------------------------------------------------------------------------------------------------------------
# One camera


def _iter_packets(video: Path) -> tuple[Iterable[bytes] | None, int]:
    """Raw (still encoded) packets of an MJPEG video, and the container's frame count; ``None`` if not MJPEG."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        return None, 0
    fourcc = int(cap.get(cv2.CAP_PROP_FOURCC))
    codec = "".join(chr((fourcc >> (8 * i)) & 0xFF) for i in range(4)).upper()
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    if codec not in ("MJPG", "MJPA", "AVRN", "LJPG", "JPEG") or not cap.set(cv2.CAP_PROP_FORMAT, -1):
        cap.release()
        return None, n

    def gen() -> Iterable[bytes]:
        try:
            while True:
                ok, pkt = cap.read()
                if not ok or pkt is None:
                    return
                yield pkt.tobytes()
        finally:
            cap.release()

    return gen(), n


def header_frame_count(video: Path) -> int:
    """The frame count the container's header announces (not trusted: see :func:`lib.cityflow.count_frames`)."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    try:
        return max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))) if cap.isOpened() else 0
    finally:
        cap.release()


def _copy_camera(video: Path, camera_dir: Path, wanted: set[int] | None) -> tuple[int, list[int]] | None:
    """Write the MJPEG packets as the frames; ``None`` when the video is not suitable (then re-encode)."""
    import cv2
    import numpy as np

    packets, n_container = _iter_packets(video)
    if packets is None:
        return None
    written: list[int] = []
    n = 0
    for n, pkt in enumerate(packets, start=1):
        if n == 1:
            img = cv2.imdecode(np.frombuffer(pkt, np.uint8), cv2.IMREAD_COLOR)
            if img is None or img.size == 0:
                return None
        if wanted is None or n in wanted:
            write_bytes(frame_file(camera_dir, n), pkt)
            written.append(n)
    if n == 0 or (n_container > 0 and n != n_container):
        return None
    return n, written


def _reencode_camera(video: Path, camera_dir: Path, wanted: set[int] | None, jpeg_quality: int
                     ) -> tuple[int, list[int]]:
    import cv2

    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise OSError(f"{video}: the video does not open")
    written: list[int] = []
    n = 0
    try:
        while cap.grab():
            n += 1
            if wanted is not None and n not in wanted:
                continue
            ok, frame = cap.retrieve()
            if not ok:
                raise OSError(f"{video}: frame {n} does not decode")
            ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
            if not ok:
                raise OSError(f"{video}: frame {n} does not encode to JPEG")
            write_bytes(frame_file(camera_dir, n), buf.tobytes())
            written.append(n)
    finally:
        cap.release()
    return n, written


def extract_camera(data_root: str | os.PathLike[str], camera: str, wanted: Iterable[int] | None = None,
                   mode: Mode = "auto", jpeg_quality: int = 95, force: bool = False) -> CameraResult:
    """Extract one camera (``wanted``: 1-based frames to write, ``None`` = all). Never raises for bad videos."""
    import cv2

    cv2.setNumThreads(1)
    t0 = time.perf_counter()
    camera_dir = Path(data_root) / camera
    want = None if wanted is None else set(wanted)
    marker = read_marker(camera_dir)
    video = camera_dir / VIDEO
    signature = video_signature(video)
    if not force and marker_covers(marker, want, signature):
        assert marker is not None
        return CameraResult(camera, "skipped", mode=str(marker.get("mode", "")), n_frames=int(marker["n_frames"]),
                            header_frames=int(marker.get("header_frames") or marker["n_frames"]),
                            seconds=time.perf_counter() - t0)
    (camera_dir / "img1" / MARKER).unlink(missing_ok=True)  # from here on the camera counts as not done
    header = 0
    try:
        if not video.exists():
            raise FileNotFoundError(f"{video}: video missing")
        header = header_frame_count(video)
        result = None if mode == "reencode" else _copy_camera(video, camera_dir, want)
        used = "copy"
        if result is None:
            if mode == "copy":
                raise OSError(f"{video}: not a Motion-JPEG video that can be copied frame by frame; "
                              "use mode 'reencode' or 'auto'")
            result = _reencode_camera(video, camera_dir, want, jpeg_quality)
            used = "reencode"
        n, written = result
        if n == 0:
            raise OSError(f"{video}: the video opens but holds no decodable frame")
    except (OSError, cv2.error) as e:
        return CameraResult(camera, "failed", error=str(e), seconds=time.perf_counter() - t0)
    record: dict[str, Any] = {"n_frames": n, "written": len(written), "only_referenced": want is not None,
                              "mode": used, "jpeg_quality": jpeg_quality if used == "reencode" else None,
                              "video": signature}
    if header > n:
        record["header_frames"] = header
    if want is not None:
        record["frames"] = written
    write_json(camera_dir / "img1" / MARKER, record, indent=None)
    return CameraResult(camera, "extracted", mode=used, n_frames=n, written=len(written),
                        header_frames=max(header, n), seconds=time.perf_counter() - t0)


def _extract_camera_args(args: tuple[Any, ...]) -> CameraResult:
    return extract_camera(*args)


# ---------------------------------------------------------------------------------------------------------------
# The dataset


def check_lengths(refs: dict[str, dict[str, list[int]]], results: list[CameraResult]) -> list[Problem]:
    """Problems for cameras that failed and tracks that reference frames past the end of their video."""
    problems: list[Problem] = []
    by_cam = {r.camera: r for r in results}
    for r in results:
        if r.status == "failed":
            kind = "video_missing" if "video missing" in (r.error or "") else "video_unreadable"
            tracks = sorted(refs.get(r.camera, {}))
            problems.append(Problem(r.camera, kind, f"{r.error} (tracks referencing it: {len(tracks)}"
                                    + (f", e.g. {tracks[0]})" if tracks else ")")))
    for cam, tracks in sorted(refs.items()):
        r = by_cam.get(cam)
        if r is None or r.status == "failed":
            continue
        broken = sorted(u for u, idx in tracks.items() if max(idx) > r.n_frames)
        if r.header_frames > r.n_frames and broken:  # a header that over-counts but loses no track is kept quiet
            problems.append(Problem(cam, "video_truncated", f"{cam}/{VIDEO} is truncated or corrupt: {r.n_frames} of "
                                    f"the {r.header_frames} frames its header announces decode; it breaks "
                                    f"{len(broken)} track(s)" + (f": {', '.join(broken[:5])}"
                                                                 + (" ..." if len(broken) > 5 else "") if broken
                                                                 else "")))
        for uuid in broken:
            last = max(tracks[uuid])
            problems.append(Problem(cam, "video_too_short",
                                    f"track {uuid} references frame {last:06d}.jpg but only {r.n_frames} frames of "
                                    f"{cam}/{VIDEO} decode", track=uuid))
    return problems


def extract_dataset(data_root: str | os.PathLike[str], only_referenced: bool = False, workers: int | None = None,
                    mode: Mode = "auto", jpeg_quality: int = 95, force: bool = False, progress: bool = True
                    ) -> FramesReport:
    """Extract every camera of ``data_root`` (cameras in parallel processes); see the module docstring."""
    from lib.progress import progress_bar

    t0 = time.perf_counter()
    force = force_requested(force)
    root = Path(data_root).expanduser().resolve()
    if not root.is_dir():
        raise MissingInputError(f"{root}: dataset folder not found")
    refs = referenced_frames(root)
    cameras = sorted(set(find_cameras(root)) | set(refs))
    jobs = [(str(root), cam, sorted({i for idx in refs.get(cam, {}).values() for i in idx}) if only_referenced
             else None, mode, jpeg_quality, force) for cam in cameras]
    video_bytes = sum((root / cam / VIDEO).stat().st_size for cam in cameras if (root / cam / VIDEO).exists())
    workers = auto_workers(workers, len(jobs), video_bytes // BYTES_PER_WORKER)
    results: list[CameraResult] = []
    bar = progress_bar(total=len(jobs), desc="frames", unit="camera", disable=not progress)
    if workers == 1:
        for job in jobs:
            results.append(_extract_camera_args(job))
            bar.update()
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(_extract_camera_args, job) for job in jobs]
            for fut in as_completed(futures):
                results.append(fut.result())
                bar.update()
    bar.close()
    results.sort(key=lambda r: r.camera)
    report = FramesReport(str(root), only_referenced, results, check_lengths(refs, results))
    report.seconds = time.perf_counter() - t0
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lib.frames", description=__doc__.split("\n\n")[0])
    ap.add_argument("data_root", help="dataset folder in the CityFlow-NL layout")
    ap.add_argument("--only-referenced", action="store_true", help="write only the frames some track references")
    ap.add_argument("--workers", type=int, default=None,
                    help="parallel processes (default: CPU count, fewer for small datasets)")
    ap.add_argument("--mode", choices=["auto", "copy", "reencode"], default="auto")
    ap.add_argument("--jpeg-quality", type=int, default=95, help="JPEG quality when re-encoding")
    ap.add_argument("--force", action="store_true", help="redo cameras that are already done")
    ap.add_argument("--report", default=None, help="write the report as JSON here")
    args = ap.parse_args(argv)
    report = extract_dataset(args.data_root, only_referenced=args.only_referenced, workers=args.workers,
                             mode=args.mode, jpeg_quality=args.jpeg_quality, force=args.force)
    d = report.to_dict()
    print(f"{d['n_cameras']} cameras: {d['extracted']} extracted, {d['skipped']} already done, {d['failed']} failed; "
          f"{d['frames_written']} frames written in {report.seconds:.1f} s")
    for p in report.problems:
        print(f"PROBLEM [{p.kind}] {p.camera}" + (f" track {p.track}" if p.track else "") + f": {p.message}",
              file=sys.stderr)
    if args.report:
        write_json(args.report, d)
    return 1 if report.problems else 0


if __name__ == "__main__":
    from lib.cli import run_main

    raise SystemExit(run_main(main))
