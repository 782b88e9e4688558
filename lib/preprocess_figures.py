"""The figures of notebooks 01–03 (frames, motion maps, text), kept here so that the notebooks stay thin."""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _rgb(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"{path}: image missing or unreadable")
    return img[:, :, ::-1]


def _box(ax: Any, box: Sequence[float], colour: str = "lime") -> None:
    from matplotlib.patches import Rectangle

    x, y, w, h = (float(v) for v in box[:4])
    ax.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor=colour, linewidth=1.5))


def all_tracks(data_root: str | os.PathLike[str]) -> dict[str, tuple[str, dict[str, Any]]]:
    """``{uuid: (split, track)}`` for train and test tracks."""
    from lib.cityflow import Layout, load_tracks

    layout = Layout.of(data_root)
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for split, path in (("train", layout.train_tracks), ("test", layout.test_tracks)):
        if path.exists():
            out.update({u: (split, t) for u, t in load_tracks(path).items()})
    return out


def frames_overview(data_root: str | os.PathLike[str], report: Any, n_samples: int = 4) -> Any:
    """Frames per camera (bar chart) and a few extracted frames with every box that tracks hold on them."""
    import matplotlib.pyplot as plt

    root = Path(data_root)
    cams = [c for c in report.cameras if c.status != "failed"]
    tracks = all_tracks(root)
    fig = plt.figure(figsize=(4 * max(2, n_samples), 6.5), constrained_layout=True)
    grid = fig.add_gridspec(2, max(2, n_samples))
    ax = fig.add_subplot(grid[0, :])
    ax.bar([c.camera for c in report.cameras], [c.n_frames for c in report.cameras], color="tab:blue")
    ax.set_ylabel("frames")
    ax.set_title(f"{report.frames_written} frames written, {len(report.problems)} problems")
    ax.tick_params(axis="x", rotation=30)
    for k, cam in enumerate(cams[:n_samples]):
        files = sorted((root / cam.camera / "img1").glob("*.jpg"))
        if not files:
            continue
        f = files[len(files) // 2]
        a = fig.add_subplot(grid[1, k])
        a.imshow(_rgb(f))
        rel = f"{cam.camera}/img1/{f.name}"
        for _, t in tracks.values():
            for fr, box in zip(t["frames"], t["boxes"]):
                if fr == rel:
                    _box(a, box)
        a.set_title(rel, fontsize=8)
        a.axis("off")
    return fig


def motion_gallery(data_root: str | os.PathLike[str], prep_dir: str | os.PathLike[str], variant: str = "published",
                   n: int = 6, seed: int = 0) -> Any:
    """Rows of: a track's first frame, its last frame (with boxes) and its motion map; train and test tracks."""
    import matplotlib.pyplot as plt

    from lib.motion import motion_map_path

    root = Path(data_root)
    tracks = all_tracks(root)
    rng = random.Random(seed)
    by_split: dict[str, list[str]] = {"train": [], "test": []}
    for u, (split, t) in tracks.items():
        if len(t["frames"]) > 1:
            by_split[split].append(u)
    chosen = [u for s in ("train", "test") for u in rng.sample(sorted(by_split[s]), min(n // 2, len(by_split[s])))]
    fig, axes = plt.subplots(len(chosen), 3, figsize=(12, 2.6 * len(chosen)), squeeze=False, constrained_layout=True)
    for row, u in zip(axes, chosen):
        split, t = tracks[u]
        for ax, k, label in ((row[0], 0, "first"), (row[1], -1, "last")):
            ax.imshow(_rgb(root / t["frames"][k]))
            _box(ax, t["boxes"][k])
            ax.set_title(f"{split} {u[:8]} {label} frame ({len(t['frames'])} frames)", fontsize=8)
        row[2].imshow(_rgb(motion_map_path(prep_dir, variant, u)))
        row[2].set_title(f"motion map ({variant})", fontsize=8)
        for ax in row:
            ax.axis("off")
    return fig


def attribute_counts(parsed: Sequence[Any]) -> dict[str, Counter[str]]:
    """Counts of parsed colour / type / manoeuvre (``None`` = not found) over :class:`Attributes` objects."""
    return {"colour": Counter(str(a.colour) for a in parsed),
            "vehicle_type": Counter(str(a.vehicle_type) for a in parsed),
            "manoeuvre": Counter(str(a.manoeuvre) for a in parsed)}


def attribute_bars(counts: dict[str, Counter[str]], title: str = "") -> Any:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(counts), figsize=(5 * len(counts), 3.2), constrained_layout=True)
    for ax, (name, c) in zip(np.atleast_1d(axes), counts.items()):
        keys = sorted(c, key=lambda k: -c[k])
        ax.bar(keys, [c[k] for k in keys], color=["lightgray" if k == "None" else "tab:blue" for k in keys])
        ax.set_title(f"{title} {name}".strip())
        ax.tick_params(axis="x", rotation=45)
    return fig


def backgrounds_figure(out_dir: str | os.PathLike[str], max_n: int = 8) -> Any:
    """The camera backgrounds a motion-map run wrote (``OUT_DIR/backgrounds/*.jpg``)."""
    import matplotlib.pyplot as plt

    files = sorted((Path(out_dir) / "backgrounds").glob("*.jpg"))[:max_n]
    if not files:
        raise FileNotFoundError(f"{out_dir}/backgrounds: no background images")
    cols = min(4, len(files))
    rows = (len(files) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), squeeze=False, constrained_layout=True)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, f in zip(axes.ravel(), files):
        ax.imshow(_rgb(f))
        ax.set_title(f.stem, fontsize=8)
    return fig
