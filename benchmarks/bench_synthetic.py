"""Synthetic-data benchmark (``make bench``; ``run(quick)`` -> list of result dicts).

``video_writing_mjpeg``: writing a camera's rendered frames (a synthetic scene with vehicles driving through it, at
the ``default`` preset's 640x360; 320x180 when quick) to a Motion-JPEG ``.avi``. Ours: ``lib.synthetic.avi``
(``cv2.imencode`` with libjpeg-turbo, 4:4:4 chroma, our own RIFF/AVI index). Baseline: ``cv2.VideoWriter`` with the
``MJPG`` fourcc (the straightforward way; FFmpeg backend). The frames are rendered once before timing. Details: file
sizes, and the mean absolute error of the decoded video against the rendered frames (image quality) for both.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np


def _frames(width: int, height: int, n: int) -> list[np.ndarray]:
    from lib.synthetic.presets import resolve
    from lib.synthetic.traffic import simulate
    from lib.synthetic.vehicles import draw_vehicle, model, project_vehicle
    from lib.synthetic.vocab import COLOURS
    from lib.synthetic.world import build_camera

    scene = build_camera(resolve("default", width=width, height=height), 0, 0)
    bg, _ = scene.background()
    cars = []
    for k, (route, vtype, colour) in enumerate(zip(scene.routes[:6], ("sedan", "suv", "bus", "pickup", "van", "sedan"),
                                                   ("red", "white", "blue", "black", "silver", "maroon"))):
        m = simulate(route, vtype, 9.0 + k)
        proj = project_vehicle(model(vtype), m.pos, m.heading, scene.cam, scene.style.sun_vec)
        cars.append((vtype, COLOURS[colour].rgb, proj, len(m.s)))
    out = []
    for f in range(n):
        img = bg.copy()
        for vtype, rgb, proj, length in cars:
            k = (f * 2) % length
            if proj.min_depth[k] > 0.5:
                draw_vehicle(img, model(vtype), proj, k, rgb, scene.style.light_bgr)
        out.append(img)
    return out


def _decode_error(path: Path, frames: list[np.ndarray]) -> float:
    cap = cv2.VideoCapture(str(path))
    errs = []
    for f in frames:
        ok, img = cap.read()
        assert ok, path
        errs.append(float(np.abs(img.astype(np.int16) - f).mean()))
    cap.release()
    return float(np.mean(errs))


def bench_video_writing(quick: bool) -> dict[str, Any]:
    from lib.synthetic.avi import MjpegAviWriter

    width, height, n = (320, 180, 150) if quick else (640, 360, 600)
    frames = _frames(width, height, n)
    with tempfile.TemporaryDirectory() as tmp:
        ours_path, base_path = Path(tmp) / "ours.avi", Path(tmp) / "baseline.avi"
        t = time.perf_counter()
        with MjpegAviWriter(ours_path, width, height, 10.0, quality=92) as wr:
            for f in frames:
                wr.write(f)
        ours = time.perf_counter() - t
        t = time.perf_counter()
        vw = cv2.VideoWriter(str(base_path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (width, height))
        vw.set(cv2.VIDEOWRITER_PROP_QUALITY, 92)
        for f in frames:
            vw.write(f)
        vw.release()
        base = time.perf_counter() - t
        details = {"frames": n, "resolution": f"{width}x{height}",
                   "ours_ms_per_frame": round(1000 * ours / n, 3), "baseline_ms_per_frame": round(1000 * base / n, 3),
                   "ours_bytes": ours_path.stat().st_size, "baseline_bytes": base_path.stat().st_size,
                   "ours_decode_mae": round(_decode_error(ours_path, frames), 3),
                   "baseline_decode_mae": round(_decode_error(base_path, frames), 3)}
    return {"name": "video_writing_mjpeg", "ours_s": ours, "baseline_s": base, "ratio": base / ours,
            "details": details}


def run(quick: bool = False) -> list[dict[str, Any]]:
    return [bench_video_writing(quick)]


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=True), indent=2))
