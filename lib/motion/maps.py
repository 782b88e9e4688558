"""Motion maps: one image per track that shows where the vehicle went, on its camera's background.

The published rule (``variant="published"``, ``docs/reference.md``, P1.5):

- **background** of a camera = the mean of every ``k``-th of its frames, ``k = min(5, max(1, n_frames // 200))``,
  at most 1000 sampled frames (positions ``0, k, 2k, ...`` of the camera's sorted ``img1/*.jpg`` list, as the
  original's ``glob``); the mean is truncated to an integer (``astype(int)``) and saved as JPEG in ``backgrounds/``;
  motion maps take the background *as saved* (decoded from that JPEG), as the original's second script read it.
- **map** of a track = an all-zero canvas of frame size; for every ``i`` with ``i % 7 == 1``, where ``i`` is the
  0-based position in the track's ``frames`` list (the original's ``for i, frame in enumerate(frames)``), the
  pixels inside box ``i`` are copied from frame ``i`` (later pastes overwrite earlier ones); finally every pixel
  still exactly zero in all three channels takes the background's value (so a genuinely black pasted pixel does
  too, as in the original). A track with a single frame has no paste: its map is the background. Boxes are
  ``[x, y, w, h]`` truncated to int and clipped to the frame (the original sliced numpy arrays unclipped).

Variants: ``iou`` pastes frame 0 and then every frame whose box has IoU <= 0.05 with the last pasted box (later
winners); ``trajectory`` is the published map with the polyline of the box centres drawn on it; ``iou_trajectory``
both. Not in the original (CPU-variant options, ``docs/cpu_variants.md``): ``ramp`` is the published map with the
polyline drawn in a colour that runs from blue at the first box to red at the last, so the direction of travel (a
left turn from a right turn over the same corner) and the stops (long same-colour stretches collapse to a dot) are
visible; ``bare_ramp`` is the same on a black canvas instead of the camera's background (pasted pixels and the line
only: nothing of the scene).
All maps are written as ``OUT_DIR/<track_uuid>.jpg`` (``OUT_DIR = PREP/motion/<variant>``), for train and test
tracks (the original built only test maps).

Speed: tracks are grouped by camera and every camera's frames are read ONCE, in order, for the background and for
all of its tracks' pastes together (the straightforward way, :mod:`lib.motion.reference`, re-reads frames per track);
cameras run in parallel processes. Resumable: maps and backgrounds are written atomically and existing ones are
kept unless ``force`` (or ``CFNL_FORCE=1``) — but only while they were made from the current inputs: each camera
keeps ``OUT_DIR/inputs/<camera>.json`` with the key of its background (the frames marker's video, the frame count,
JPEG quality) and one key per track (:func:`lib.io.content_hash` of the track's frames and boxes, the variant, the
background key). An edited track's map is rebuilt, a changed video rebuilds its camera, the rest is reused.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lib.cityflow import Layout, camera_of
from lib.errors import InputError
from lib.frame_io import decode_bgr, read_image
from lib.frames import auto_workers, read_marker
from lib.io import content_hash, force_requested, path_in, read_json, write_bytes, write_json, write_run_info
from lib.prep import backgrounds_dir, motion_dir  # noqa: F401  (motion_dir: re-exported)
from lib.prep import motion_map_file as motion_map_path  # noqa: F401  (re-exported)

Variant = Literal["published", "iou", "trajectory", "iou_trajectory", "ramp", "bare_ramp"]
VARIANTS: tuple[str, ...] = ("published", "iou", "trajectory", "iou_trajectory", "ramp", "bare_ramp")
SPLITS: tuple[str, ...] = ("train", "test")
PASTE_EVERY = 7
PASTE_PHASE = 1
IOU_MAX = 0.05
BG_MAX_K = 5
BG_FRAMES_PER_K = 200
BG_MAX_SAMPLES = 1000
TRAJECTORY_BGR = (0, 0, 255)
JPEG_QUALITY = 95
# starting a worker process costs about a second: below this many boxes per worker, fewer processes are faster
BOXES_PER_WORKER = 4000


# ---------------------------------------------------------------------------------------------------------------
# Paths


def inputs_path(out_dir: str | os.PathLike[str], camera: str) -> Path:
    """``OUT_DIR/inputs/<split>_<Sxx>_<cyyy>.json``: the keys of what a camera's outputs were made from."""
    return Path(out_dir) / "inputs" / (camera.replace("/", "_") + ".json")


def background_path(out_dir: str | os.PathLike[str], camera: str) -> Path:
    """``OUT_DIR/backgrounds/<split>_<Sxx>_<cyyy>.jpg`` for camera ``<split>/<Sxx>/<cyyy>``."""
    return backgrounds_dir(out_dir) / (camera.replace("/", "_") + ".jpg")


# ---------------------------------------------------------------------------------------------------------------
# The rule, piece by piece


def background_stride(n_frames: int) -> int:
    return min(BG_MAX_K, max(1, n_frames // BG_FRAMES_PER_K))


def background_positions(n_frames: int) -> list[int]:
    """0-based positions (in the camera's sorted frame list) averaged into the background."""
    return list(range(0, n_frames, background_stride(n_frames)))[:BG_MAX_SAMPLES]


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two ``[x, y, w, h]`` boxes."""
    ax0, ay0, aw, ah = (float(v) for v in a[:4])
    bx0, by0, bw, bh = (float(v) for v in b[:4])
    iw = min(ax0 + aw, bx0 + bw) - max(ax0, bx0)
    ih = min(ay0 + ah, by0 + bh) - max(ay0, by0)
    inter = max(0.0, iw) * max(0.0, ih)
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def paste_positions(boxes: Sequence[Sequence[float]], variant: str = "published") -> list[int]:
    """0-based positions in a track's frame list whose box is pasted, in paste order."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown motion-map variant {variant!r}; expected one of {VARIANTS}")
    if not variant.startswith("iou"):
        return [i for i in range(len(boxes)) if i % PASTE_EVERY == PASTE_PHASE]
    out: list[int] = []
    for i, box in enumerate(boxes):
        if not out or box_iou(box, boxes[out[-1]]) <= IOU_MAX:
            out.append(i)
    return out


def clip_box(box: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """``[x, y, w, h]`` -> ``(x0, y0, x1, y1)`` truncated to int and clipped to the frame (possibly empty)."""
    x, y, w, h = (int(v) for v in box[:4])
    return max(0, x), max(0, y), min(width, x + w), min(height, y + h)


def fill_from_background(canvas: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Pixels exactly zero in all three channels take the background's value (in place; returned)."""
    mask = ~canvas.any(axis=2)
    canvas[mask] = background[mask]
    return canvas


def compose_map(background: np.ndarray,
                patches: Sequence[tuple[tuple[int, int, int, int], np.ndarray]]) -> np.ndarray:
    """The published canvas-then-fill rule computed box by box, in time proportional to the pasted area.

    Equal to pasting ``patches`` (in order) on a zero canvas and then :func:`fill_from_background`: inside each
    pasted box the last paste decides — its non-black pixels stay, its exactly black pixels show the background."""
    out = background.copy()
    for (x0, y0, x1, y1), patch in patches:
        nonzero = (patch[:, :, 0] | patch[:, :, 1] | patch[:, :, 2]) != 0
        out[y0:y1, x0:x1] = np.where(nonzero[:, :, None], patch, background[y0:y1, x0:x1])
    return out


def box_centres(boxes: Sequence[Sequence[float]]) -> list[tuple[int, int]]:
    """Integer centres of ``[x, y, w, h]`` boxes: the points of the trajectory lines."""
    return [(int(b[0] + b[2] / 2), int(b[1] + b[3] / 2)) for b in boxes]


def draw_trajectory(img: np.ndarray, boxes: Sequence[Sequence[float]]) -> np.ndarray:
    """Draw the polyline of the box centres (in place; returned)."""
    import cv2

    h, w = img.shape[:2]
    thickness = max(2, round(min(h, w) / 90))
    pts = np.array(box_centres(boxes), dtype=np.int32)
    if len(pts) == 1:
        cv2.circle(img, tuple(int(v) for v in pts[0]), thickness, TRAJECTORY_BGR, -1, cv2.LINE_AA)
    elif len(pts) > 1:
        cv2.polylines(img, [pts.reshape(-1, 1, 2)], False, TRAJECTORY_BGR, thickness, cv2.LINE_AA)
    return img


def draw_time_ramp(img: np.ndarray, boxes: Sequence[Sequence[float]]) -> np.ndarray:
    """Draw the polyline of the box centres coloured by time: blue (first box) to red (last box); in place."""
    import cv2

    h, w = img.shape[:2]
    thickness = max(2, round(min(h, w) / 60))
    pts = box_centres(boxes)
    if len(pts) == 1:
        cv2.circle(img, pts[0], thickness, (255, 0, 0), -1, cv2.LINE_AA)
    for k in range(len(pts) - 1):
        t = (k + 0.5) / (len(pts) - 1)
        cv2.line(img, pts[k], pts[k + 1], (int(255 * (1 - t)), 0, int(255 * t)), thickness, cv2.LINE_AA)
    return img


def encode_jpeg(img: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError("JPEG encoding failed")
    return buf.tobytes()


def mean_to_uint8(total: np.ndarray, count: int) -> np.ndarray:
    """The background: ``total / count`` TRUNCATED to an integer, as the original's ``astype(int)`` (P1.5); the
    integer division of the non-negative sums is exactly that truncation."""
    return np.clip(total // np.uint32(count), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------------
# Inputs


@dataclass(frozen=True)
class TrackJob:
    uuid: str
    frames: tuple[str, ...]
    boxes: tuple[tuple[float, ...], ...]


def load_tracks_by_camera(data_root: str | os.PathLike[str], splits: Sequence[str] = SPLITS
                          ) -> dict[str, list[TrackJob]]:
    """``{camera: [TrackJob]}`` for the tracks of the chosen splits (``train`` and/or ``test``)."""
    layout = Layout.of(data_root)
    files = {"train": layout.train_tracks, "test": layout.test_tracks}
    out: dict[str, list[TrackJob]] = defaultdict(list)
    for split in splits:
        if split not in files:
            raise ValueError(f"unknown split {split!r}; expected some of {SPLITS}")
        path = files[split]
        for uuid, t in read_json(path).items():
            frames, boxes = t.get("frames"), t.get("boxes")
            if not frames or not isinstance(frames, list):
                raise InputError(f"{path}: track {uuid}: field 'frames' must be a non-empty list")
            if not isinstance(boxes, list) or len(boxes) != len(frames):
                raise InputError(f"{path}: track {uuid}: field 'boxes' must be a list as long as 'frames' "
                                 f"({len(frames)})")
            cams = {camera_of(f) for f in frames}
            if len(cams) != 1:
                raise InputError(f"{path}: track {uuid}: field 'frames' spans several cameras {sorted(cams)}")
            out[cams.pop()].append(TrackJob(uuid, tuple(frames), tuple(tuple(b) for b in boxes)))
    return dict(out)


def camera_frame_files(data_root: Path, camera: str) -> list[Path]:
    """The camera's extracted frames, sorted (the original's ``glob`` of ``img1/*.jpg``).

    Raises when the camera was extracted with ``--only-referenced`` (the background needs all frames)."""
    cam_dir = data_root / camera
    marker = read_marker(cam_dir)
    if marker and marker.get("only_referenced"):
        raise FileNotFoundError(f"{cam_dir}/img1: extracted with --only-referenced, but the background averages all "
                                f"frames; run `python -m lib.frames {data_root}` (full extraction) first")
    files = sorted((cam_dir / "img1").glob("*.jpg"))
    if not files:
        raise FileNotFoundError(f"{cam_dir}/img1: no extracted frames; run `python -m lib.frames {data_root}` first")
    return files


# ---------------------------------------------------------------------------------------------------------------
# One camera, frames read once


@dataclass
class CameraResult:
    camera: str
    status: str  # built | skipped | failed
    tracks: int = 0
    written: int = 0
    frames_read: int = 0
    n_frames: int = 0
    seconds: float = 0.0
    error: str | None = None


def _iter_images(paths: Sequence[Path], threads: int) -> Iterator[np.ndarray]:
    """Decode ``paths`` in order with a small bounded read-ahead in threads (OpenCV releases the GIL)."""
    if threads <= 1:
        for p in paths:
            yield read_image(p)
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        window: deque[Future[np.ndarray]] = deque()
        it = iter(paths)
        for p in it:
            window.append(pool.submit(read_image, p))
            if len(window) >= 2 * threads:
                break
        for p in it:
            yield window.popleft().result()
            window.append(pool.submit(read_image, p))
        while window:
            yield window.popleft().result()


def build_camera(data_root: str | os.PathLike[str], camera: str, tracks: Sequence[TrackJob],
                 out_dir: str | os.PathLike[str], variant: str = "published", force: bool = False,
                 jpeg_quality: int = JPEG_QUALITY, threads: int = 1) -> CameraResult:
    """Background and maps of one camera's tracks, reading each needed frame once. Never raises for bad inputs."""
    import cv2

    cv2.setNumThreads(1)
    t0 = time.perf_counter()
    root, out = Path(data_root), Path(out_dir)
    res = CameraResult(camera, "built", tracks=len(tracks))
    bg_file = background_path(out, camera)
    marker = read_marker(root / camera) or {}
    bg_key = content_hash({"video": marker.get("video"), "n_frames": marker.get("n_frames"),
                           "mode": marker.get("mode"), "jpeg_quality": jpeg_quality})
    rec_path = inputs_path(out, camera)
    try:
        done = read_json(rec_path) if rec_path.exists() and not force else {}
    except ValueError:
        done = {}
    if done.get("background") != bg_key:
        done = {}  # another video or extraction: the background and every map of the camera are redone
    keys = {t.uuid: content_hash({"frames": t.frames, "boxes": t.boxes, "variant": variant, "background": bg_key,
                                  "jpeg_quality": jpeg_quality}) for t in tracks}
    done_tracks = done.get("tracks", {})
    todo = [t for t in tracks if done_tracks.get(t.uuid) != keys[t.uuid] or not path_in(out, t.uuid, ".jpg").exists()]
    if not todo and bg_file.exists() and done:
        res.status = "skipped"
        res.seconds = time.perf_counter() - t0
        return res
    try:
        files = camera_frame_files(root, camera)
        res.n_frames = len(files)
        index = {f.name: i for i, f in enumerate(files)}
        need_bg = not done or not bg_file.exists()
        bg_pos = set(background_positions(len(files))) if need_bg else set()
        # pastes[position in camera] -> [(track number, order within track, box)]
        pastes: dict[int, list[tuple[int, int, tuple[float, ...]]]] = defaultdict(list)
        for ti, t in enumerate(todo):
            for order, i in enumerate(paste_positions(t.boxes, variant)):
                name = Path(t.frames[i]).name
                if name not in index or camera_of(t.frames[i]) != camera:
                    raise FileNotFoundError(f"track {t.uuid}: frame {t.frames[i]} (position {i}) is not among the "
                                            f"{len(files)} extracted frames of {camera}")
                pastes[index[name]].append((ti, order, t.boxes[i]))
        wanted = sorted(bg_pos | set(pastes))
        h = w = 0
        total: np.ndarray | None = None
        patches: list[list[tuple[int, tuple[int, int, int, int], np.ndarray]]] = [[] for _ in todo]
        for pos, img in zip(wanted, _iter_images([files[p] for p in wanted], threads)):
            res.frames_read += 1
            if total is None:
                h, w = img.shape[:2]
                total = np.zeros((h, w, 3), np.uint32)
            elif img.shape[:2] != (h, w):
                raise ValueError(f"{files[pos]}: frame size {img.shape[1]}x{img.shape[0]} differs from the "
                                 f"camera's {w}x{h}")
            if pos in bg_pos:
                np.add(total, img, out=total)
            for ti, order, box in pastes.get(pos, ()):
                x0, y0, x1, y1 = clip_box(box, w, h)
                if x1 > x0 and y1 > y0:
                    patches[ti].append((order, (x0, y0, x1, y1), img[y0:y1, x0:x1].copy()))
        if need_bg:
            assert total is not None
            data = encode_jpeg(mean_to_uint8(total, len(bg_pos)), jpeg_quality)
            write_bytes(bg_file, data)
            background = decode_bgr(data)
        else:
            background = read_image(bg_file)
        if background.shape[:2] != (h, w) and h:
            raise ValueError(f"{bg_file}: background size {background.shape[1]}x{background.shape[0]} differs from "
                             f"the camera's frames {w}x{h}")
        base = np.zeros_like(background) if variant.startswith("bare") else background  # bare: no scene
        for ti, t in enumerate(todo):
            ordered = sorted(patches[ti], key=lambda p: p[0])
            canvas = compose_map(base, [(box, patch) for _, box, patch in ordered])
            if variant.endswith("trajectory"):
                draw_trajectory(canvas, t.boxes)
            elif variant.endswith("ramp"):
                draw_time_ramp(canvas, t.boxes)
            write_bytes(path_in(out, t.uuid, ".jpg"), encode_jpeg(canvas, jpeg_quality))
            res.written += 1
        others = {u: k for u, k in done_tracks.items() if u not in keys}  # tracks of other splits' runs
        write_json(rec_path, {"background": bg_key, "tracks": {**others, **keys}}, indent=None)
    except (OSError, ValueError, cv2.error) as e:
        res.status, res.error = "failed", f"{camera}: {e}"
    res.seconds = time.perf_counter() - t0
    return res


def _build_camera_args(args: tuple[Any, ...]) -> CameraResult:
    return build_camera(*args)


# ---------------------------------------------------------------------------------------------------------------
# The dataset


@dataclass
class MotionReport:
    out_dir: str
    variant: str
    splits: list[str]
    cameras: list[CameraResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def problems(self) -> list[str]:
        return [c.error for c in self.cameras if c.error]

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": self.out_dir, "variant": self.variant, "splits": self.splits, "seconds": self.seconds,
            "n_cameras": len(self.cameras), "n_tracks": sum(c.tracks for c in self.cameras),
            "written": sum(c.written for c in self.cameras),
            "skipped_cameras": sum(c.status == "skipped" for c in self.cameras),
            "failed_cameras": sum(c.status == "failed" for c in self.cameras),
            "frames_read": sum(c.frames_read for c in self.cameras),
            "problems": self.problems, "cameras": [asdict(c) for c in self.cameras],
        }


def build_motion_maps(data_root: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                      variant: str = "published", splits: Sequence[str] = SPLITS, workers: int | None = None,
                      force: bool = False, jpeg_quality: int = JPEG_QUALITY, threads: int | None = None,
                      progress: bool = True) -> MotionReport:
    """Backgrounds and motion maps of every track of ``splits``, into ``out_dir`` (see the module docstring)."""
    from lib.progress import progress_bar

    if variant not in VARIANTS:
        raise ValueError(f"unknown motion-map variant {variant!r}; expected one of {VARIANTS}")
    force = force_requested(force)
    t0 = time.perf_counter()
    root = Path(data_root).expanduser().resolve()
    out = Path(out_dir).expanduser().resolve()
    by_cam = load_tracks_by_camera(root, splits)
    # largest cameras first, for an even load across processes
    cams = sorted(by_cam, key=lambda c: (-sum(len(t.frames) for t in by_cam[c]), c))
    n_boxes = sum(len(t.frames) for ts in by_cam.values() for t in ts)
    workers = auto_workers(workers, len(cams), n_boxes // BOXES_PER_WORKER)
    threads = threads if threads is not None else max(1, (os.cpu_count() or 1) // workers)
    jobs = [(str(root), cam, by_cam[cam], str(out), variant, force, jpeg_quality, threads) for cam in cams]
    results: list[CameraResult] = []
    n_tracks = sum(len(v) for v in by_cam.values())
    bar = progress_bar(total=n_tracks, desc=f"motion maps ({variant})", unit="track", disable=not progress)
    if workers == 1:
        for job in jobs:
            results.append(_build_camera_args(job))
            bar.update(results[-1].tracks)
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            for fut in as_completed([pool.submit(_build_camera_args, job) for job in jobs]):
                results.append(fut.result())
                bar.update(results[-1].tracks)
    bar.close()
    results.sort(key=lambda r: r.camera)
    report = MotionReport(str(out), variant, list(splits), results, time.perf_counter() - t0)
    write_run_info(out, {"data_root": str(root), "out_dir": str(out), "variant": variant, "splits": list(splits),
                         "workers": workers, "threads": threads, "force": force, "jpeg_quality": jpeg_quality,
                         "summary": {k: v for k, v in report.to_dict().items() if k != "cameras"}})
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lib.motion", description=__doc__.split("\n\n")[0])
    ap.add_argument("data_root", help="dataset folder (frames extracted by `python -m lib.frames`)")
    ap.add_argument("out_dir", help="output folder, normally PREP/motion/<variant>")
    ap.add_argument("--variant", choices=VARIANTS, default="published")
    ap.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS))
    ap.add_argument("--workers", type=int, default=None,
                    help="parallel processes (default: CPU count, fewer for small datasets)")
    ap.add_argument("--threads", type=int, default=None, help="JPEG decoding threads per process")
    ap.add_argument("--jpeg-quality", type=int, default=JPEG_QUALITY)
    ap.add_argument("--force", action="store_true", help="rebuild maps and backgrounds that exist")
    args = ap.parse_args(argv)
    report = build_motion_maps(args.data_root, args.out_dir, variant=args.variant, splits=args.splits,
                               workers=args.workers, force=args.force, jpeg_quality=args.jpeg_quality,
                               threads=args.threads)
    d = report.to_dict()
    print(f"{d['n_tracks']} tracks in {d['n_cameras']} cameras: {d['written']} maps written "
          f"({d['skipped_cameras']} cameras already done, {d['failed_cameras']} failed), {d['frames_read']} frames "
          f"read in {report.seconds:.1f} s -> {report.out_dir}")
    for p in report.problems:
        print(f"PROBLEM {p}", file=sys.stderr)
    return 1 if report.problems else 0


if __name__ == "__main__":
    from lib.cli import run_main

    raise SystemExit(run_main(main))
