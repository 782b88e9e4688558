"""Decoding, cropping and resizing, exactly as the original pipeline: PIL decode, PIL crop of the expanded box
(black outside the frame), ``resize((S, S))`` bilinear (torchvision ``Resize`` on a PIL image). Outputs are uint8
HWC arrays; normalisation happens on the model's device."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from lib.crops import expand_box


def load_rgb(path: str | os.PathLike[str], what: str = "") -> Image.Image:
    """Decode an image file as RGB. An RGB file is returned as decoded: ``convert("RGB")`` on an RGB image is a
    full copy, which took ~45 % of the decoding time of a 640x360 JPEG frame."""
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


def motion_map_file(prep_dir: str | os.PathLike[str], variant: str, track_uuid: str) -> Path:
    """``PREP/motion/<variant>/<track_uuid>.jpg`` (docs/architecture.md)."""
    return Path(prep_dir) / "motion" / variant / f"{track_uuid}.jpg"


def load_motion(prep_dir: str | os.PathLike[str], variant: str, track_uuid: str, size: int | tuple[int, int]
                ) -> np.ndarray:
    """The whole motion map of a track resized to the model's input size."""
    path = motion_map_file(prep_dir, variant, track_uuid)
    if not path.exists():
        raise FileNotFoundError(f"{path}: motion map of track {track_uuid} (variant {variant!r}) not found; build "
                                f"them with python -m lib.motion DATA_ROOT {path.parent} --variant {variant}")
    return resize_square(load_rgb(path), size)
