"""The one frame reader: every image and video frame the project decodes goes through here.

Two decoders, because the published pipelines used two and their pixels differ by a few levels:

- :func:`load_rgb` — PIL, RGB (the original training and test scripts of both parts decode with PIL);
- :func:`read_image` — OpenCV, BGR or RGB (the original background and motion-map scripts decode with OpenCV).

:func:`read_frame` reads one frame of a CityFlow-NL data root by its relative path (``./S01/c001/img1/000001.jpg``
or without ``./``): the extracted JPEG when present, else frame ``k`` of the camera's ``vdo.avi`` (``lib.frames``
extracts frame k of the video to ``img1/%06d.jpg`` k, so the pixels agree), in RGB or BGR. A frame that neither
source has is an error naming the track, the frame and both paths.

Decoding less (opt-in; the published full-resolution decode stays the default of every caller):
:func:`decode_reduced` decodes a JPEG at 1/2, 1/4 or 1/8 of its size with libjpeg's DCT scaling (OpenCV's
``IMREAD_REDUCED_COLOR_r``: the reduced pixel ``i`` covers the full-size pixels ``[i*r, (i+1)*r)``, so boxes scale
by ``1/r``, :func:`scale_box`); :func:`reduction_for` picks the largest factor that still leaves a crop at least the
pixel size it is resized to.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from lib.cityflow import camera_of, frame_index

Color = Literal["rgb", "bgr"]
REDUCTIONS: tuple[int, ...] = (1, 2, 4, 8)  # the scales libjpeg decodes at through OpenCV


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


def _reduced_flag(r: int) -> int:
    import cv2

    flags = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
             8: cv2.IMREAD_REDUCED_COLOR_8}
    if r not in flags:
        raise ValueError(f"reduction {r!r}: must be one of {REDUCTIONS}")
    return flags[r] | cv2.IMREAD_IGNORE_ORIENTATION


def reduced_size(width: int, height: int, r: int) -> tuple[int, int]:
    """Size ``(w, h)`` of a ``width x height`` JPEG decoded at ``1/r``: libjpeg rounds up (``ceil(w / r)``)."""
    return -(-int(width) // r), -(-int(height) // r)


def reduction_for(src_w: int, src_h: int, box_w: float, box_h: float, out_w: int, out_h: int) -> int:
    """Largest ``r`` in :data:`REDUCTIONS` at which a crop of ``box_w x box_h`` full-size pixels of a
    ``src_w x src_h`` frame, resized to ``out_w x out_h``, still has at least the output's pixels: ``box_w / r >=
    out_w`` and ``box_h / r >= out_h`` (the resize still shrinks, or keeps, the crop). 1 when no reduction fits; the
    reduced frame keeps at least one pixel each way."""
    if min(src_w, src_h) <= 0 or min(out_w, out_h) <= 0:
        raise ValueError(f"reduction_for: frame {src_w}x{src_h} and output {out_w}x{out_h} must be positive")
    best = 1
    for r in REDUCTIONS:
        if box_w / r >= out_w and box_h / r >= out_h and r <= min(src_w, src_h):
            best = r
    return best


def scale_box(box: Sequence[float], r: int) -> tuple[float, ...]:
    """``box`` (any coordinates in full-size pixels: ``x, y, w, h`` or ``x0, y0, x1, y1``) in the pixels of the
    frame decoded at ``1/r``."""
    return tuple(float(v) / r for v in box)


def decode_reduced(src: str | os.PathLike[str] | bytes | bytearray | memoryview, r: int = 1, color: Color = "rgb",
                   what: str = "frame") -> np.ndarray:
    """Decode a JPEG file (or its bytes) at ``1/r`` of its size (``r`` in :data:`REDUCTIONS`; 1 = full size) as uint8
    ``[ceil(H / r), ceil(W / r), 3]`` in ``color`` order, with libjpeg's DCT scaling (OpenCV
    ``IMREAD_REDUCED_COLOR_r``): a fraction of the full decode's work. EXIF orientation is ignored, as
    :func:`load_rgb` does, so boxes stay in the stored pixel grid (scale them with :func:`scale_box`). Not the
    published decode: an option for crops that are resized to far fewer pixels anyway."""
    import cv2

    flag = _reduced_flag(r)
    if isinstance(src, (bytes, bytearray, memoryview)):
        img = cv2.imdecode(np.frombuffer(src, np.uint8), flag)
        name = f"{len(src)} bytes"
    else:
        name = str(src)
        if not Path(src).is_file():
            raise FileNotFoundError(f"{name}: {what} not found")
        img = cv2.imread(name, flag)
    if img is None:
        raise OSError(f"{name}: {what} missing or not decodable (reduced decode 1/{r})")
    return np.ascontiguousarray(img[:, :, ::-1]) if color == "rgb" else img
