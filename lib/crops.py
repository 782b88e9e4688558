"""The two published crop rules, on numpy images (H, W, 3).

Part One (``expand_crop``): the box keeps its centre and grows to ``c*w`` by ``c*h``; coordinates are truncated to
int like PIL's crop box and areas outside the frame are black. Part Two (``pad_crop``): the margin is ``pad`` times
the *full frame* width/height, clipped to the frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def expand_box(box: Sequence[float], c: float) -> tuple[int, int, int, int]:
    """Part One crop box ``(x0, y0, x1, y1)`` for expansion factor ``c`` (CROP_AREA); may leave the frame."""
    x, y, w, h = (float(v) for v in box)
    x0 = x - (c - 1.0) * w / 2.0
    y0 = y - (c - 1.0) * h / 2.0
    x1 = x + (c + 1.0) * w / 2.0
    y1 = y + (c + 1.0) * h / 2.0
    return int(x0), int(y0), int(x1), int(y1)


def crop_with_fill(img: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """Crop ``img[y0:y1, x0:x1]`` where the window may leave the image; outside pixels are 0 (PIL semantics)."""
    h, w = img.shape[:2]
    out_h, out_w = max(1, y1 - y0), max(1, x1 - x0)
    out = np.zeros((out_h, out_w) + img.shape[2:], dtype=img.dtype)
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = img[sy0:sy1, sx0:sx1]
    return out


def expand_crop(img: np.ndarray, box: Sequence[float], c: float = 1.0) -> np.ndarray:
    return crop_with_fill(img, *expand_box(box, c))


def pad_box(box: Sequence[float], pad: float, frame_w: int, frame_h: int) -> tuple[int, int, int, int]:
    """Part Two crop box: margin ``pad * frame size`` on each side, clipped to the frame."""
    x, y, w, h = (float(v) for v in box)
    mx, my = pad * frame_w, pad * frame_h
    x0 = max(0, int(x - mx))
    y0 = max(0, int(y - my))
    x1 = min(frame_w, int(x + w + mx))
    y1 = min(frame_h, int(y + h + my))
    return x0, y0, max(x0 + 1, x1), max(y0 + 1, y1)


def pad_crop(img: np.ndarray, box: Sequence[float], pad: float = 0.0) -> np.ndarray:
    h, w = img.shape[:2]
    x0, y0, x1, y1 = pad_box(box, pad, w, h)
    return img[y0:y1, x0:x1]
