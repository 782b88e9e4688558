"""Track thumbnails for figures: a crop of a track's box from one of its frames, as an RGB uint8 array.

Frames are read from the extracted JPEGs (``DATA_ROOT/<frame path>``); when a frame has not been extracted, it is
decoded from the camera's ``vdo.avi`` instead (the same pixels; ``lib.frames`` extracts frame k of the video to
``img1/%06d.jpg`` k). A frame that neither source has is an error naming the track, the frame and both paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lib.cityflow import Layout
from lib.crops import expand_crop
from lib.frame_io import read_frame


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    """Fit ``img`` into a ``size`` x ``size`` square (aspect kept, grey padding)."""
    import cv2

    h, w = img.shape[:2]
    s = size / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    out = np.full((size, size, 3), 127, dtype=np.uint8)
    y0, x0 = (size - nh) // 2, (size - nw) // 2
    out[y0:y0 + nh, x0:x0 + nw] = small
    return out


def track_thumbnail(layout: Layout, track_id: str, track: dict[str, Any], position: float = 0.5, size: int = 112,
                    context: float = 1.3) -> np.ndarray:
    """Crop (box grown by ``context``) of the frame at relative ``position`` of the track, ``size`` square."""
    frames, boxes = track["frames"], track["boxes"]
    if not frames:
        raise ValueError(f"track {track_id}: no frames")
    i = min(len(frames) - 1, max(0, int(round(position * (len(frames) - 1)))))
    img = read_frame(layout.root, frames[i], track_id)
    return _resize(expand_crop(img, boxes[i], context), size)


def track_strip(layout: Layout, track_id: str, track: dict[str, Any], n: int = 4, size: int = 96
                ) -> list[np.ndarray]:
    """``n`` thumbnails evenly spaced along the track (fewer when the track is shorter)."""
    k = min(n, len(track["frames"]))
    positions: Sequence[float] = [0.5] if k == 1 else list(np.linspace(0.0, 1.0, k))
    return [track_thumbnail(layout, track_id, track, p, size) for p in positions]


def framed(img: np.ndarray, colour: tuple[int, int, int], width: int = 5) -> np.ndarray:
    """``img`` with a coloured border (used to mark the true track)."""
    out = img.copy()
    out[:width], out[-width:], out[:, :width], out[:, -width:] = colour, colour, colour, colour
    return out


