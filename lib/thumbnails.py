"""Track thumbnails for figures, as RGB uint8 arrays: a crop of a track's box from one of its frames
(:func:`track_thumbnail`, :func:`track_strip` along the track), and its path (:func:`track_path`: the part of the
frame the track crosses, with the line of its box centres from start to arrowhead, so a turn can be checked by eye).

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


def track_path(layout: Layout, track_id: str, track: dict[str, Any], size: int = 128, margin: float = 0.15
               ) -> np.ndarray:
    """The track's path on its last frame: the region around every box (grown by ``margin`` of its size), the line
    of box centres in yellow from a dot at the first box to an arrowhead at the last, the last box in red."""
    import cv2

    frames, boxes = track["frames"], track["boxes"]
    if not frames:
        raise ValueError(f"track {track_id}: no frames")
    img = read_frame(layout.root, frames[-1], track_id).copy()
    b = np.asarray(boxes, dtype=np.float64)
    centres = np.stack([b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2], axis=1)
    x0, y0 = b[:, 0].min(), b[:, 1].min()
    x1, y1 = (b[:, 0] + b[:, 2]).max(), (b[:, 1] + b[:, 3]).max()
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    region = (cx - side / 2, cy - side / 2, side, side)
    thick = max(1, round(side / 90))
    pts = np.round(centres).astype(np.int32)
    x, y, w, h = (int(round(v)) for v in b[-1])
    cv2.rectangle(img, (x, y), (x + w, y + h), (230, 40, 40), thick)
    cv2.polylines(img, [pts.reshape(-1, 1, 2)], False, (255, 220, 0), thick, cv2.LINE_AA)
    cv2.circle(img, tuple(int(v) for v in pts[0]), thick * 2, (255, 220, 0), -1, cv2.LINE_AA)
    # the arrowhead points along the last stretch of the path (a few boxes back, so jitter does not turn it)
    tail = pts[max(0, len(pts) - 1 - max(1, len(pts) // 6))]
    if np.any(tail != pts[-1]):
        cv2.arrowedLine(img, tuple(int(v) for v in tail), tuple(int(v) for v in pts[-1]), (255, 220, 0), thick,
                        cv2.LINE_AA, tipLength=min(0.9, side / 8 / max(1.0, float(np.hypot(*(pts[-1] - tail))))))
    return _resize(expand_crop(img, region, 1.0), size)


def framed(img: np.ndarray, colour: tuple[int, int, int], width: int = 5) -> np.ndarray:
    """``img`` with a coloured border (used to mark the true track)."""
    out = img.copy()
    out[:width], out[-width:], out[:, :width], out[:, -width:] = colour, colour, colour, colour
    return out


