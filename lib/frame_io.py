"""The one frame reader: every image and video frame the project decodes goes through here.

Two decoders, because the published pipelines used two and their pixels differ by a few levels:

- :func:`load_rgb` — PIL, RGB (the original training and test scripts of both parts decode with PIL);
- :func:`read_image` — OpenCV, BGR or RGB (the original background and motion-map scripts decode with OpenCV).

:func:`read_frame` reads one frame of a CityFlow-NL data root by its relative path (``./S01/c001/img1/000001.jpg``
or without ``./``): the extracted JPEG when present, else frame ``k`` of the camera's ``vdo.avi`` (``lib.frames``
extracts frame k of the video to ``img1/%06d.jpg`` k, so the pixels agree), in RGB or BGR. A frame that neither
source has is an error naming the track, the frame and both paths.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from lib.cityflow import camera_of, frame_index

Color = Literal["rgb", "bgr"]


def load_rgb(path: str | os.PathLike[str], what: str = "") -> Image.Image:
    """Decode an image file with PIL as RGB. An RGB file is returned as decoded: ``convert("RGB")`` on an RGB image
    is a full copy, which took ~45 % of the decoding time of a 640x360 JPEG frame."""
    try:
        im = Image.open(path)
        try:
            im.load()  # reads the whole file; PIL closes a file it opened itself after loading
            if im.mode != "RGB":
                return im.convert("RGB")
            return im
        except BaseException:
            im.close()
            raise
    except FileNotFoundError:
        hint = f" ({what})" if what else ""
        raise FileNotFoundError(f"{path}: image not found{hint}") from None
    except OSError as e:
        raise OSError(f"{path}: cannot decode image ({e})") from None


def read_image(path: str | os.PathLike[str], color: Color = "bgr", what: str = "frame") -> np.ndarray:
    """Decode an image file with OpenCV as uint8 ``[H, W, 3]`` in ``color`` order."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"{path}: {what} missing or unreadable")
    return np.ascontiguousarray(img[:, :, ::-1]) if color == "rgb" else img


def decode_bgr(data: bytes) -> np.ndarray:
    """Decode JPEG (or PNG) bytes with OpenCV as BGR uint8."""
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise OSError("JPEG decoding failed")
    return img


def read_video_frame(video: str | os.PathLike[str], index: int) -> np.ndarray | None:
    """Frame ``index`` (1-based, as in ``img1/%06d.jpg``) of a video, BGR, or None when it cannot be decoded."""
    import cv2

    if not Path(video).exists():
        return None
    cap = cv2.VideoCapture(str(video))
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, index - 1)
        ok, img = cap.read()
    finally:
        cap.release()
    return img if ok and img is not None else None


def read_frame(root: str | os.PathLike[str], frame_rel: str, track: str = "?", color: Color = "rgb") -> np.ndarray:
    """Frame ``frame_rel`` of data root ``root`` (uint8 ``[H, W, 3]`` in ``color`` order): the extracted JPEG when
    present, else decoded from the camera's video."""
    import cv2

    root = Path(root)
    path = root / frame_rel
    img = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.exists() else None
    if img is None:
        video = root / camera_of(frame_rel) / "vdo.avi"
        img = read_video_frame(video, frame_index(frame_rel))
        if img is None:
            raise FileNotFoundError(f"track {track}: frame {frame_rel} not readable from {path} or frame "
                                    f"{frame_index(frame_rel)} of {video}")
    return np.ascontiguousarray(img[:, :, ::-1]) if color == "rgb" else img
