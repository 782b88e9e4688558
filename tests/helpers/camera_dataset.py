"""A hand-made mini dataset in the CityFlow-NL layout for the preprocessing tests: a few MJPEG cameras with coloured
rectangles moving over a fixed background, and the tracks that follow them (boxes exact by construction)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import cv2
import numpy as np

W, H = 160, 96


def background_image(ci: int) -> np.ndarray:
    bg = np.zeros((H, W, 3), np.uint8)
    bg[:] = (60 + 30 * ci, 90, 70)
    cv2.line(bg, (0, H // 2), (W, H // 2), (200, 200, 200), 3)
    return bg


def make_mini_dataset(out: Path, n_frames: int = 60, seed: int = 0, cameras: tuple[str, ...] = (
        "train/S01/c001", "train/S01/c002", "validation/S02/c006"), tracks_per_camera: int = 3,
        black_vehicle: bool = False) -> Path:
    """Write videos and track files; returns ``out``. With ``black_vehicle`` the first vehicle is pure black."""
    rng = np.random.default_rng(seed)
    out = Path(out)
    train: dict[str, dict] = {}
    test: dict[str, dict] = {}
    for ci, cam in enumerate(cameras):
        d = out / cam
        d.mkdir(parents=True, exist_ok=True)
        bg = background_image(ci)
        vehicles = []
        for k in range(tracks_per_camera):
            start = int(rng.integers(0, n_frames // 3))
            length = int(rng.integers(n_frames // 3, n_frames - start))
            x0, y0 = float(rng.integers(0, W - 30)), float(rng.integers(0, H - 20))
            vx, vy = float(rng.uniform(-2, 2)), float(rng.uniform(-1, 1))
            col = (0, 0, 0) if (black_vehicle and k == 0) else tuple(int(c) for c in rng.integers(40, 255, 3))
            vehicles.append((start, length, x0, y0, vx, vy, col))
        writer = cv2.VideoWriter(str(d / "vdo.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (W, H))
        frames: dict[int, list[str]] = {k: [] for k in range(tracks_per_camera)}
        boxes: dict[int, list[list[int]]] = {k: [] for k in range(tracks_per_camera)}
        for f in range(n_frames):
            img = bg.copy()
            for k, (s, n, x0, y0, vx, vy, col) in enumerate(vehicles):
                if s <= f < s + n:
                    x = int(np.clip(x0 + vx * (f - s), 0, W - 24))
                    y = int(np.clip(y0 + vy * (f - s), 0, H - 16))
                    cv2.rectangle(img, (x, y), (x + 23, y + 15), col, -1)
                    frames[k].append(f"{cam}/img1/{f + 1:06d}.jpg")
                    boxes[k].append([x, y, 24, 16])
            writer.write(img)
        writer.release()
        for k in range(tracks_per_camera):
            u = str(uuid.UUID(int=int(rng.integers(0, 2**62))))
            t: dict = {"frames": frames[k], "boxes": boxes[k]}
            if cam.startswith("train"):
                t["nl"] = ["A red sedan turns left.", "A red car makes a left turn.", "Red sedan turning left."]
                train[u] = t
            else:
                test[u] = t
    (out / "train-tracks.json").write_text(json.dumps(train))
    (out / "test-tracks.json").write_text(json.dumps(test))
    (out / "test-queries.json").write_text(json.dumps({"q0": ["A blue SUV goes straight."] * 3}))
    return out
