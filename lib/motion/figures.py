"""Figures of notebook 02: camera backgrounds and motion maps beside their tracks' first and last frames."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

from lib.frames.figures import all_tracks, draw_box, rgb_image
from lib.prep import backgrounds_dir, motion_map_file


def motion_gallery(data_root: str | os.PathLike[str], prep_dir: str | os.PathLike[str], variant: str = "published",
                   n: int = 6, seed: int = 0) -> Any:
    """Rows of: a track's first frame, its last frame (with boxes) and its motion map; train and test tracks."""
    import matplotlib.pyplot as plt

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
            ax.imshow(rgb_image(root / t["frames"][k]))
            draw_box(ax, t["boxes"][k])
            ax.set_title(f"{split} {u[:8]} {label} frame ({len(t['frames'])} frames)", fontsize=8)
        row[2].imshow(rgb_image(motion_map_file(prep_dir, variant, u)))
        row[2].set_title(f"motion map ({variant})", fontsize=8)
        for ax in row:
            ax.axis("off")
    return fig


def backgrounds_figure(out_dir: str | os.PathLike[str], max_n: int = 8) -> Any:
    """The camera backgrounds a motion-map run wrote (``OUT_DIR/backgrounds/*.jpg``)."""
    import matplotlib.pyplot as plt

    every = sorted(backgrounds_dir(out_dir).glob("*.jpg"))
    files = every[:max_n]
    if not files:
        raise FileNotFoundError(f"{out_dir}/backgrounds: no background images")
    cols = min(4, len(files))
    rows = (len(files) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), squeeze=False, constrained_layout=True)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, f in zip(axes.ravel(), files):
        ax.imshow(rgb_image(f))
        ax.set_title(f.stem, fontsize=9)
    shown = "every camera" if len(files) == len(every) else f"the first {len(files)} of {len(every)} cameras"
    fig.suptitle(f"backgrounds of {shown}", fontsize=10)
    return fig
