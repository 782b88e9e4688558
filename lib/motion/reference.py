"""The published motion-map rule, written the straightforward way (the original's two scripts, literally).

One pass per camera for its background, then one loop per track that reads the background and the track's frames
again. It is deliberately independent of :mod:`lib.motion.maps` (no shared helpers beyond file paths): the tests compare
``lib.motion.maps``'s maps with these pixel by pixel, and ``benchmarks/bench_preprocess.py`` times both.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import cv2
import numpy as np

from lib.io import path_in, read_json


def reference_background(camera_dir: str | os.PathLike[str]) -> np.ndarray:
    """Mean of every k-th frame (``k = min(5, max(1, n // 200))``), at most 1000 frames, truncated to integers
    (``astype(int)``, as the original)."""
    imgs = sorted(glob.glob(os.path.join(str(camera_dir), "img1", "*.jpg")))
    interval = min(5, max(1, len(imgs) // 200))
    samples = imgs[::interval][:1000]
    avg = None
    for p in samples:
        img = cv2.imread(p).astype(np.float64)
        avg = img if avg is None else avg + img
    assert avg is not None, f"{camera_dir}: no frames"
    avg = avg / len(samples)
    return avg.astype(int).astype(np.uint8)


def reference_motion_map(data_root: str | os.PathLike[str], track: dict, background: np.ndarray) -> np.ndarray:
    """Zero canvas; paste box ``i`` of frame ``i`` when ``i % 7 == 1``; zero pixels take the background. As the
    original script, every frame of the track is decoded inside the loop, the pasted ones only are used."""
    h, w = background.shape[:2]
    canvas = np.zeros_like(background)
    for i, (rel, box) in enumerate(zip(track["frames"], track["boxes"])):
        frame = cv2.imread(os.path.join(str(data_root), rel))  # the original reads every frame, then tests i
        if i % 7 == 1:
            x, y, bw, bh = (int(v) for v in box[:4])
            x0, y0, x1, y1 = max(0, x), max(0, y), min(w, x + bw), min(h, y + bh)
            if x1 > x0 and y1 > y0:
                canvas[y0:y1, x0:x1, :] = frame[y0:y1, x0:x1, :]
    zero = (canvas[:, :, 0] == 0) & (canvas[:, :, 1] == 0) & (canvas[:, :, 2] == 0)
    canvas[zero] = background[zero]
    return canvas


def build_reference(data_root: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                    splits: tuple[str, ...] = ("train", "test"), jpeg_quality: int = 95) -> int:
    """Backgrounds (one pass per camera) then maps (one loop per track); returns the number of maps written."""
    root, out = Path(data_root), Path(out_dir)
    (out / "backgrounds").mkdir(parents=True, exist_ok=True)
    tracks: dict[str, dict] = {}
    for split in splits:
        tracks.update(read_json(root / f"{split}-tracks.json"))
    cameras = sorted({"/".join(Path(t["frames"][0]).parts[:3]) for t in tracks.values()})
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
    for cam in cameras:
        cv2.imwrite(str(out / "backgrounds" / (cam.replace("/", "_") + ".jpg")), reference_background(root / cam),
                    params)
    for uuid, track in tracks.items():
        cam = "/".join(Path(track["frames"][0]).parts[:3])
        background = cv2.imread(str(out / "backgrounds" / (cam.replace("/", "_") + ".jpg")))
        cv2.imwrite(str(path_in(out, uuid, ".jpg")), reference_motion_map(root, track, background), params)
    return len(tracks)
