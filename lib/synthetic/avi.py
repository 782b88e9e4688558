"""A minimal Motion-JPEG AVI writer: frames encoded with ``cv2.imencode`` (libjpeg-turbo) into a RIFF AVI 1.0 file
with an ``idx1`` index, as OpenCV's and FFmpeg's readers expect.

It is about four times faster than ``cv2.VideoWriter`` with the MJPG codec, deterministic, and every video packet
is a complete JPEG file (so extracting frames can copy packets without re-encoding). Chroma is not subsampled
(4:4:4): colours stay sharp on small vehicles and the FFmpeg and libjpeg decoders agree to within 3 levels (with
4:2:0 they differ by up to ~60 on colour edges).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

_AVIF_HASINDEX = 0x10
_AVIIF_KEYFRAME = 0x10


def _chunk_header(fourcc: bytes, size: int) -> bytes:
    return fourcc + struct.pack("<I", size)


class MjpegAviWriter:
    """``with MjpegAviWriter(path, w, h, fps, quality) as wr: wr.write(bgr_frame)``; the file is complete on close."""

    def __init__(self, path: str | os.PathLike[str], width: int, height: int, fps: float, quality: int = 92):
        self.path = Path(path)
        self.width, self.height, self.fps, self.quality = int(width), int(height), float(fps), int(quality)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._index: list[tuple[int, int]] = []  # (offset from 'movi', size)
        self._max_chunk = 0
        self._f.write(self._headers(0, 0))
        self._movi_start = self._f.tell() - 4  # position of the 'movi' fourcc

    def _headers(self, n_frames: int, movi_size: int) -> bytes:
        scale, rate = 1000, int(round(self.fps * 1000))
        avih = struct.pack("<IIIIIIIIII16x", int(round(1e6 / self.fps)), 0, 0, _AVIF_HASINDEX, n_frames, 0, 1,
                           self._max_chunk, self.width, self.height)
        strh = b"vidsMJPG" + struct.pack("<IHHIIIIIIIIhhhh", 0, 0, 0, 0, scale, rate, 0, n_frames, self._max_chunk,
                                         0xFFFFFFFF, 0, 0, 0, self.width, self.height)
        strf = struct.pack("<IiiHH4sIiiII", 40, self.width, self.height, 1, 24, b"MJPG",
                           self.width * self.height * 3, 0, 0, 0, 0)
        strl = b"strl" + _chunk_header(b"strh", len(strh)) + strh + _chunk_header(b"strf", len(strf)) + strf
        hdrl = b"hdrl" + _chunk_header(b"avih", len(avih)) + avih + _chunk_header(b"LIST", len(strl)) + strl
        head = _chunk_header(b"LIST", len(hdrl)) + hdrl
        riff_size = 4 + len(head) + 8 + movi_size + (8 + 16 * n_frames if n_frames else 0)
        return b"RIFF" + struct.pack("<I", riff_size) + b"AVI " + head + _chunk_header(b"LIST", movi_size) + b"movi"

    def write(self, frame: np.ndarray) -> None:
        if frame.shape[:2] != (self.height, self.width):
            raise ValueError(f"{self.path}: frame {frame.shape[1]}x{frame.shape[0]} but the video is "
                             f"{self.width}x{self.height}")
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                                               cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])
        if not ok:
            raise OSError(f"{self.path}: JPEG encoding failed")
        self.write_jpeg(buf.tobytes())

    def write_jpeg(self, data: bytes) -> None:
        offset = self._f.tell() - self._movi_start
        self._f.write(_chunk_header(b"00dc", len(data)) + data + (b"\0" if len(data) % 2 else b""))
        self._index.append((offset, len(data)))
        self._max_chunk = max(self._max_chunk, len(data))

    def close(self) -> None:
        if self._f.closed:
            return
        end = self._f.tell()
        movi_size = end - self._movi_start
        idx = b"".join(b"00dc" + struct.pack("<III", _AVIIF_KEYFRAME, off, size) for off, size in self._index)
        self._f.write(_chunk_header(b"idx1", len(idx)) + idx)
        self._f.seek(0)
        self._f.write(self._headers(len(self._index), movi_size))
        self._f.close()

    def __enter__(self) -> MjpegAviWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
