"""lib.frame_io's reduced JPEG decoding: the reduction rule, the decoded sizes (libjpeg rounds up), the pixels (close
to a box downscale of the full decode), and the one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lib.frame_io import REDUCTIONS, decode_reduced, load_rgb, read_image, reduced_size, reduction_for, scale_box


def _smooth_frame(w: int, h: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([128 + 100 * np.sin(xx / 37.0 + yy / 53.0), 128 + 90 * np.cos(xx / 71.0 - yy / 29.0),
                    128 + 80 * np.sin((xx - yy) / 45.0)], -1) + rng.normal(0, 2, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def jpeg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("frame_io") / "frame.jpg"
    Image.fromarray(_smooth_frame(643, 361)).save(path, quality=92)  # odd sizes: libjpeg rounds the reduced size up
    return path


def test_reduction_is_the_largest_that_keeps_the_output_pixels() -> None:
    assert reduction_for(1920, 1080, 900, 600, 320, 320) == 1  # 900 / 2 = 450 but 600 / 2 = 300 < 320
    assert reduction_for(1920, 1080, 1300, 700, 320, 320) == 2
    assert reduction_for(1920, 1080, 1300, 700, 160, 160) == 4
    assert reduction_for(1920, 1080, 1300, 700, 64, 64) == 8  # 8 is the largest libjpeg scale
    assert reduction_for(1920, 1080, 640, 640, 320, 320) == 2  # exactly the output size is enough
    assert reduction_for(1920, 1080, 100, 80, 320, 320) == 1  # a crop that is enlarged is never reduced
    assert reduction_for(1920, 1080, 1300, 700, 64, 400) == 1  # both sides must allow it
    assert reduction_for(4, 4, 1000, 1000, 8, 8) == 4  # the reduced frame keeps at least a pixel
    with pytest.raises(ValueError, match="reduction_for: frame 0x1080"):
        reduction_for(0, 1080, 100, 100, 10, 10)


def test_scale_box_and_reduced_size() -> None:
    assert scale_box((10, 20, 30, 41), 2) == (5.0, 10.0, 15.0, 20.5)
    assert scale_box([8, 8, 8, 8], 1) == (8.0, 8.0, 8.0, 8.0)
    assert reduced_size(643, 361, 2) == (322, 181) and reduced_size(643, 361, 8) == (81, 46)
    assert reduced_size(640, 360, 1) == (640, 360)


def test_decode_reduced_sizes_and_pixels(jpeg: Path) -> None:
    full = np.asarray(load_rgb(jpeg))
    assert np.array_equal(decode_reduced(jpeg, 1), read_image(jpeg, "rgb"))  # r = 1: OpenCV's full decode
    assert np.array_equal(decode_reduced(jpeg, 1), full)  # the same libjpeg result as PIL here
    data = jpeg.read_bytes()
    for r in REDUCTIONS[1:]:
        img = decode_reduced(jpeg, r)
        w, h = reduced_size(643, 361, r)
        assert img.shape == (h, w, 3) and img.dtype == np.uint8
        assert np.array_equal(decode_reduced(data, r), img)  # bytes = file
        assert np.array_equal(decode_reduced(data, r, "bgr"), img[:, :, ::-1])
        # reduced pixel i covers full pixels [i r, (i + 1) r): close to the box-filtered full decode
        hh, ww = 361 // r, 643 // r
        ref = full[:hh * r, :ww * r].reshape(hh, r, ww, r, 3).mean((1, 3))
        diff = np.abs(img[:hh, :ww].astype(np.float64) - ref)
        # measured mean / max: 0.42 / 2.8 (r=2), 0.50 / 2.4 (4), 0.47 / 1.9 (8)
        assert diff.mean() < 1.0 and diff.max() < 6, (r, diff.mean(), diff.max())


def test_decode_reduced_errors(jpeg: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"reduction 3: must be one of \(1, 2, 4, 8\)"):
        decode_reduced(jpeg, 3)
    with pytest.raises(FileNotFoundError, match="absent.jpg: frame not found"):
        decode_reduced(tmp_path / "absent.jpg", 2)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(OSError, match=r"bad.jpg: frame missing or not decodable \(reduced decode 1/2\)"):
        decode_reduced(bad, 2)
    with pytest.raises(OSError, match="10 bytes: track t1 missing or not decodable"):
        decode_reduced(b"not a jpeg", 4, what="track t1")
