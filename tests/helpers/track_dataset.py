"""A hand-made mini CityFlow-NL dataset + preparation folder for the Part One / trainer tests.

Independent of the synthetic generator and the preprocessing stages (whose outputs it imitates): JPEG frames under
``train/S01/c00k/img1/%06d.jpg``, ``train-tracks.json`` (coloured boxes moving left / right / straight, sentences
that say colour and direction), ``PREP/split.json``, ``PREP/text/train-tracks_nlpaug.json`` (subject prefix + the
4th sentence of chunks) and ``PREP/motion/published/<uuid>.jpg`` (box trail on a grey background).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 180, 60), "white": (240, 240, 240),
           "black": (20, 20, 20), "yellow": (230, 210, 30)}
MOVES = ("left", "right", "straight")


def make_mini_dataset(root: Path, n_tracks: int = 16, n_frames: int = 5, n_val: int = 4, frame_w: int = 96,
                      frame_h: int = 64, seed: int = 0, cameras: int = 2) -> tuple[Path, Path]:
    """Write the dataset into ``root/data`` and the preparation folder into ``root/prep``; return both."""
    rng = np.random.default_rng(seed)
    data, prep = root / "data", root / "prep"
    tracks: dict[str, dict] = {}
    aug: dict[str, dict] = {}
    per_cam: dict[int, list[tuple[str, list[list[int]], tuple[int, int, int]]]] = {}
    colours = list(COLOURS)
    for i in range(n_tracks):
        uid = f"{i:08d}-0000-4000-8000-{seed:012d}"
        cam = i % cameras
        colour = colours[i % len(colours)]
        move = MOVES[(i // len(colours)) % len(MOVES)]
        x0, y0 = int(rng.integers(5, frame_w // 2)), int(rng.integers(5, frame_h // 2))
        w, h = int(rng.integers(14, 24)), int(rng.integers(10, 18))
        dx = {"left": -3, "right": 3, "straight": 0}[move]
        dy = {"left": 0, "right": 0, "straight": 3}[move]
        boxes = [[max(0, x0 + dx * k), max(0, y0 + dy * k), w, h] for k in range(n_frames)]
        start = 1 + (i // cameras) * n_frames
        frames = [f"train/S01/c{cam + 1:03d}/img1/{start + k:06d}.jpg" for k in range(n_frames)]
        nl = [f"A {colour} car goes {move}.", f"{colour.capitalize()} sedan heading {move}.",
              f"The {colour} vehicle drives {move} at the intersection."]
        tracks[uid] = {"frames": frames, "boxes": boxes, "nl": nl}
        chunks = [f"A {colour} car", f"{colour.capitalize()} sedan", f"The {colour} vehicle"]
        aug[uid] = {"frames": frames, "boxes": boxes,
                    "nl": [f"{c}. {s}" for c, s in zip(chunks, nl)] + [" ".join(c + "." for c in chunks)]}
        per_cam.setdefault(cam, []).append((uid, boxes, COLOURS[colour]))
    # frames: every track in its own frame range of its camera (other tracks' frames are not drawn)
    for uid, tr in tracks.items():
        colour = next(c for u, _b, c in sum(per_cam.values(), []) if u == uid)
        for rel, (x, y, w, h) in zip(tr["frames"], tr["boxes"]):
            img = Image.new("RGB", (frame_w, frame_h), (90, 90, 90))
            d = ImageDraw.Draw(img)
            d.rectangle([0, frame_h // 2 - 4, frame_w, frame_h // 2 + 4], fill=(60, 60, 60))
            d.rectangle([x, y, x + w - 1, y + h - 1], fill=colour)
            p = data / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            img.save(p, quality=92)
        mm = Image.new("RGB", (frame_w, frame_h), (90, 90, 90))
        d = ImageDraw.Draw(mm)
        for x, y, w, h in tr["boxes"]:
            d.rectangle([x, y, x + w - 1, y + h - 1], fill=colour)
        mp = prep / "motion" / "published" / f"{uid}.jpg"
        mp.parent.mkdir(parents=True, exist_ok=True)
        mm.save(mp, quality=92)
    (data / "train-tracks.json").write_text(json.dumps(tracks))
    ids = list(tracks)
    order = list(rng.permutation(len(ids)))
    split = {"train": [ids[i] for i in order[n_val:]], "val": [ids[i] for i in order[:n_val]]}
    (prep / "text").mkdir(parents=True, exist_ok=True)
    (prep / "split.json").write_text(json.dumps(split))
    (prep / "text" / "train-tracks_nlpaug.json").write_text(json.dumps(aug))
    return data, prep


def tiny_overrides(**train: object) -> dict:
    """Overrides that make any Part One config tiny: test backbone, 32 px, packaged text encoder, few steps."""
    t = {"batch_size": 4, "max_steps": 4, "val_every": 2, "ckpt_every": 2, "log_every": 1, "lr": 1e-3,
         "warmup_steps": 1, "lr_decay_every_steps": 3, "workers": 0, "val_frames_per_track": 3}
    t.update(train)
    return {"model": {"backbone": "test_efficientnet", "backbone_weights": None, "image_size": 32,
                      "embed_dim": 32, "text_encoder": "all-MiniLM-L6-v2", "head_dropout": 0.0,
                      "static_padding_size": None},
            "data": {"cache_crops": True, "crop_store": False, "cache_text": True},
            "train": t}
