"""Figures of notebook 01: frames per camera and sample frames with every box the tracks hold on them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lib.frame_io import read_image


def rgb_image(path: Path) -> np.ndarray:
    return read_image(path, "rgb", what="image")


def draw_box(ax: Any, box: Sequence[float], colour: str = "lime") -> None:
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
    shown = min(n_samples, len(cams))
    which = "every camera" if shown == len(cams) else f"the first {shown} of {len(cams)} cameras"
    ax.set_title(f"frames per camera: {report.frames_written} written, {len(report.problems)} problems; "
                 f"below, the middle frame of {which}")
    ax.tick_params(axis="x", rotation=30)
    for k, cam in enumerate(cams[:n_samples]):
        files = sorted((root / cam.camera / "img1").glob("*.jpg"))
        if not files:
            continue
        f = files[len(files) // 2]
        a = fig.add_subplot(grid[1, k])
        a.imshow(rgb_image(f))
        rel = f"{cam.camera}/img1/{f.name}"
        for _, t in tracks.values():
            for fr, box in zip(t["frames"], t["boxes"]):
                if fr == rel:
                    draw_box(a, box)
        a.set_title(rel, fontsize=8)
        a.axis("off")
    return fig
