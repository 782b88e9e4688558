"""Cropping and resizing, exactly as the original pipeline: PIL decode (:func:`lib.frame_io.load_rgb`), PIL crop of
the expanded box (black outside the frame), ``resize((S, S))`` bilinear (torchvision ``Resize`` on a PIL image).
Outputs are uint8 HWC arrays; normalisation happens on the model's device."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from lib.crops import expand_box
from lib.frame_io import load_rgb
from lib.prep import motion_map_file


def resize_square(img: Image.Image, size: int | tuple[int, int]) -> np.ndarray:
    """``size``: S (square) or (height, width)."""
    h, w = (size, size) if isinstance(size, int) else size
    return np.array(img.resize((w, h), Image.BILINEAR), dtype=np.uint8)  # a writable copy


def crop_expand(img: Image.Image, box: Sequence[float], crop_area: float) -> Image.Image:
    """Part One crop of ``box`` (x, y, w, h) grown by ``crop_area`` around its centre (PIL: black outside)."""
    return img.crop(expand_box(box, crop_area))


def crop_resize(img: Image.Image, box: Sequence[float], crop_area: float, size: int | tuple[int, int]
                ) -> np.ndarray:
    return resize_square(crop_expand(img, box, crop_area), size)


def load_crop(frame_path: str | os.PathLike[str], box: Sequence[float], crop_area: float,
              size: int | tuple[int, int], what: str = "") -> np.ndarray:
    return crop_resize(load_rgb(frame_path, what), box, crop_area, size)


def load_motion(prep_dir: str | os.PathLike[str], variant: str, track_uuid: str, size: int | tuple[int, int]
                ) -> np.ndarray:
    """The whole motion map of a track resized to the model's input size."""
    path = motion_map_file(prep_dir, variant, track_uuid)
    if not path.exists():
        raise FileNotFoundError(f"{path}: motion map of track {track_uuid} (variant {variant!r}) not found; build "
                                f"them with python -m lib.motion DATA_ROOT {path.parent} --variant {variant}")
    return resize_square(load_rgb(path), size)
