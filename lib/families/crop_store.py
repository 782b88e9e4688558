"""Crop store: every crop of a set of tracks cut once, at a family's crop geometry and input size, kept as JPEG
inside one shard file per camera and read back with random access by the DataLoader workers.

Why: a paper configuration draws ~3 M training samples, each a 288-320 px crop of a 1920x1080 (up to 2560x1920)
frame; decoding the whole frame per sample (the original's way) costs 10-20x more than decoding the finished crop.
The crop cache of the CPU variants (:mod:`lib.families.dual_stream.cache`, raw uint8) would take ~30 GB per
configuration on the real training split; as JPEG it is ~10x smaller.

Layout of ``CACHE/crop_store/<name>/`` (``name`` says the geometry, e.g. ``expand_c1.0000_s288``):

- ``<camera>.jpgs`` — the JPEG files of every crop of the camera's tracks, back to back, one frame decoded once for
  every box on it (tracks of a camera share frames);
- ``<camera>.json`` — ``{"key", "quality", "tracks": {uuid: [[offset, length], ...]}}`` (one entry per frame of the
  track, in the track's frame order) and the fidelity measured while building (see below).

A shard's ``key`` is the :func:`lib.io.content_hash` of the geometry name, the JPEG settings and every one of its
tracks' ``frames`` and ``boxes``: a shard whose tracks changed is rebuilt, the others are kept (``force`` or
``CFNL_FORCE=1`` rebuilds all). Both files of a shard are written atomically, the index last.

Fidelity: JPEG (quality 95, 4:4:4 chroma by default) is lossy. While building, every crop is decoded again and
compared with the crop it came from; the shard records the mean and max absolute pixel difference and the lowest
PSNR, and a shard whose lowest PSNR falls under ``min_psnr`` is an error (the store would not hold the pixels the
configuration trains on). ``docs/fidelity_switches.md`` lists ``data.crop_store``.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lib.cityflow import Layout, camera_of
from lib.frame_io import decode_bgr, load_rgb
from lib.io import atomic_path, content_hash, file_signature, force_requested, path_in, read_json, write_json

CropFn = Callable[[Any, Sequence[float]], np.ndarray]

DEFAULT_QUALITY = 95
DEFAULT_MIN_PSNR = 30.0
FORMAT = 1


def _encode(crop: np.ndarray, quality: int) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(crop[:, :, ::-1]),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality),
                            cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])
    if not ok:
        raise OSError(f"JPEG encoding of a {crop.shape} crop failed")
    return buf.tobytes()


def _decode(data: bytes, what: str) -> np.ndarray:
    try:
        img = decode_bgr(data)
    except OSError:
        raise OSError(f"{what}: the stored JPEG cannot be decoded (delete the store to rebuild it)") from None
    return np.ascontiguousarray(img[:, :, ::-1])


def track_key(track: dict[str, Any]) -> str:
    """What a track's crops are computed from: its frames and boxes."""
    return content_hash({"frames": track["frames"], "boxes": track["boxes"]})


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


@dataclass(frozen=True)
class ShardJob:
    camera: str
    path: Path  # the .jpgs file
    index: Path  # the .json file
    key: str
    tracks: dict[str, dict[str, Any]]


class CropStore:
    """The crops of ``crop_fn(pil_frame, box) -> uint8 HWC`` (a family's geometry, at its input size) for a set of
    tracks. ``read(uuid, position)`` returns the crop of frame ``position`` of a track as uint8 RGB HWC."""

    def __init__(self, cache_dir: str | os.PathLike[str], name: str, crop_fn: CropFn,
                 quality: int = DEFAULT_QUALITY, min_psnr: float = DEFAULT_MIN_PSNR) -> None:
        if not 50 <= int(quality) <= 100:
            raise ValueError(f"crop store {name}: JPEG quality must be 50..100, got {quality}")
        self.name, self.crop_fn, self.quality, self.min_psnr = name, crop_fn, int(quality), float(min_psnr)
        self.folder = Path(cache_dir) / "crop_store" / name
        self._entries: dict[str, tuple[str, np.ndarray]] | None = None
        self._keys: dict[str, str] = {}
        self._fds: dict[str, int] = {}
        self._pid = -1

    # -- layout and keys -----------------------------------------------------------------------------------------
    def _jobs(self, tracks: dict[str, dict[str, Any]], layout: Layout | None = None) -> list[ShardJob]:
        """One job per camera; with ``layout`` the key also covers each frame file's size and mtime (a frame
        extracted again rebuilds its camera's shard)."""
        by_cam: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        for u in sorted(tracks):
            tr = tracks[u]
            if not tr.get("frames") or len(tr["frames"]) != len(tr.get("boxes") or []):
                raise ValueError(f"track {u}: 'frames' and 'boxes' must be equal in length and non-empty")
            by_cam[camera_of(tr["frames"][0])][u] = tr
        jobs = []
        for cam in sorted(by_cam):
            shard = cam.replace("/", "_")
            frames = sorted({f for t in by_cam[cam].values() for f in t["frames"]})
            key = content_hash({"format": FORMAT, "geometry": self.name, "quality": self.quality,
                                "tracks": {u: {"frames": t["frames"], "boxes": t["boxes"]}
                                           for u, t in by_cam[cam].items()},
                                "files": None if layout is None else
                                [file_signature(layout.frame_path(f)) for f in frames]})
            jobs.append(ShardJob(cam, path_in(self.folder, shard, ".jpgs"), path_in(self.folder, shard, ".json"),
                                 key, by_cam[cam]))
        return jobs

    @staticmethod
    def _shard_key(job: ShardJob) -> str | None:
        try:
            return str(read_json(job.index).get("key")) if job.index.exists() and job.path.exists() else None
        except ValueError:
            return None

    def stale(self, layout: Layout, tracks: dict[str, dict[str, Any]]) -> list[str]:
        """Cameras whose shard is missing or was built from other tracks, boxes, frame files or settings."""
        return [j.camera for j in self._jobs(tracks, layout) if self._shard_key(j) != j.key]

    def is_complete(self, layout: Layout, tracks: dict[str, dict[str, Any]]) -> bool:
        """Every shard of exactly these tracks is built from the current frame files (what :meth:`build` checks)."""
        return not self.stale(layout, tracks)

    def missing(self, tracks: dict[str, dict[str, Any]]) -> list[str]:
        """Tracks of ``tracks`` that the store lacks or holds for other frames or boxes (a reader may use any
        subset of the tracks the store was built for)."""
        keys = self._load_index()[1]
        return [u for u, tr in tracks.items() if keys.get(u) != track_key(tr)]

    # -- build ---------------------------------------------------------------------------------------------------
    def build(self, layout: Layout, tracks: dict[str, dict[str, Any]], workers: int = 0,
              log: Callable[[str], None] = print, progress: bool = True, force: bool = False) -> dict[str, Any]:
        """Write every missing or stale shard for ``tracks``; returns counts, bytes, time and fidelity."""
        t0 = time.perf_counter()
        jobs = self._jobs(tracks, layout)
        todo = jobs if force_requested(force) else [j for j in jobs if self._shard_key(j) != j.key]
        if todo:
            self.folder.mkdir(parents=True, exist_ok=True)
            n_crops = sum(len(t["frames"]) for j in todo for t in j.tracks.values())
            log(f"crop store {self.folder}: {len(todo)} of {len(jobs)} camera shard(s), {n_crops} crops")
            loader = torch.utils.data.DataLoader(_ShardBuilds(self, layout, todo), batch_size=None,
                                                 num_workers=workers, generator=torch.Generator())
            it: Any = loader
            if progress:
                from lib.progress import progress_bar

                it = progress_bar(loader, total=len(todo), desc="crop store", unit="camera", leave=False)
            for _ in it:
                pass
        self._entries = None
        return {"crop_store": str(self.folder), "crop_store_shards_built": len(todo),
                "crop_store_shards": len(jobs), "crop_store_build_s": time.perf_counter() - t0,
                **self.summary(tracks)}

    def build_shard(self, layout: Layout, job: ShardJob) -> dict[str, Any]:
        """One camera's shard: each frame decoded once, every box on it cropped, encoded, checked, appended."""
        plan: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for u, tr in job.tracks.items():
            for pos, f in enumerate(tr["frames"]):
                plan[f].append((u, pos))
        offsets: dict[str, list[list[int]]] = {u: [[0, 0]] * len(tr["frames"]) for u, tr in job.tracks.items()}
        diff_sum = 0.0
        diff_max = 0
        low_psnr = math.inf
        n = 0
        with atomic_path(job.path) as tmp, open(tmp, "wb") as out:
            offset = 0
            for frame, reqs in plan.items():
                img = load_rgb(layout.frame_path(frame), what=f"track {reqs[0][0]}, frame {frame}")
                for u, pos in reqs:
                    crop = self.crop_fn(img, job.tracks[u]["boxes"][pos])
                    data = _encode(crop, self.quality)
                    back = _decode(data, f"{job.path}: track {u}, frames[{pos}]")
                    d = np.abs(back.astype(np.int16) - crop.astype(np.int16))
                    diff_sum += float(d.mean())
                    diff_max = max(diff_max, int(d.max()))
                    low_psnr = min(low_psnr, psnr(back, crop))
                    n += 1
                    out.write(data)
                    offsets[u][pos] = [offset, len(data)]
                    offset += len(data)
        if low_psnr < self.min_psnr:
            job.path.unlink(missing_ok=True)
            raise ValueError(f"crop store {self.folder}: camera {job.camera}: a crop re-encoded at JPEG quality "
                             f"{self.quality} has PSNR {low_psnr:.1f} dB < {self.min_psnr} dB; raise "
                             f"data.crop_store_quality or set data.crop_store: false")
        stats = {"crops": n, "bytes": offset, "mean_abs_diff": diff_sum / max(1, n), "max_abs_diff": diff_max,
                 "min_psnr_db": None if math.isinf(low_psnr) else low_psnr}
        write_json(job.index, {"key": job.key, "format": FORMAT, "geometry": self.name, "quality": self.quality,
                               "camera": job.camera, "fidelity": stats,
                               "track_keys": {u: track_key(tr) for u, tr in job.tracks.items()},
                               "tracks": offsets}, indent=None)
        return stats

    def summary(self, tracks: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Crops, bytes and fidelity over the shards of ``tracks`` (as recorded when they were built)."""
        crops = size = 0
        mean_w = 0.0
        diff_max = 0
        low = math.inf
        for j in self._jobs(tracks):
            if not j.index.exists():
                continue
            f = read_json(j.index)["fidelity"]
            crops += f["crops"]
            size += f["bytes"]
            mean_w += f["mean_abs_diff"] * f["crops"]
            diff_max = max(diff_max, f["max_abs_diff"])
            if f["min_psnr_db"] is not None:
                low = min(low, f["min_psnr_db"])
        return {"crop_store_crops": crops, "crop_store_bytes": size,
                "crop_store_bytes_per_crop": size / crops if crops else None,
                "crop_store_mean_abs_diff": mean_w / crops if crops else None, "crop_store_max_abs_diff": diff_max,
                "crop_store_min_psnr_db": None if math.isinf(low) else low, "crop_store_quality": self.quality}

    # -- read ----------------------------------------------------------------------------------------------------
    def _load_index(self) -> tuple[dict[str, tuple[str, np.ndarray]], dict[str, str]]:
        if self._entries is None:
            entries: dict[str, tuple[str, np.ndarray]] = {}
            keys: dict[str, str] = {}
            for p in sorted(self.folder.glob("*.json")):
                if p.name.startswith("."):  # a temporary file of an interrupted write (lib.io.atomic_path)
                    continue
                idx = read_json(p)
                shard = str(p.with_suffix(".jpgs"))
                for u, rows in idx["tracks"].items():
                    entries[u] = (shard, np.asarray(rows, dtype=np.int64).reshape(-1, 2))
                keys.update(idx.get("track_keys", {}))
            self._entries, self._keys = entries, keys
        return self._entries, self._keys

    def _fd(self, shard: str) -> int:
        if self._pid != os.getpid():  # a forked DataLoader worker opens its own descriptors
            self._fds, self._pid = {}, os.getpid()
        fd = self._fds.get(shard)
        if fd is None:
            fd = self._fds[shard] = os.open(shard, os.O_RDONLY)
        return fd

    def read_bytes(self, uuid: str, position: int) -> bytes:
        entry = self._load_index()[0].get(uuid)
        if entry is None:
            raise KeyError(f"crop store {self.folder}: no crops of track {uuid} (build it with the family's prepare)")
        shard, rows = entry
        if not 0 <= position < len(rows):
            raise IndexError(f"crop store {self.folder}: track {uuid} has {len(rows)} frames, asked for {position}")
        offset, length = (int(v) for v in rows[position])
        data = os.pread(self._fd(shard), length, offset)
        if len(data) != length:
            raise OSError(f"{shard}: truncated at track {uuid}, frames[{position}] (delete the store to rebuild it)")
        return data

    def read(self, uuid: str, position: int) -> np.ndarray:
        return _decode(self.read_bytes(uuid, position), f"{self.folder}: track {uuid}, frames[{position}]")

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers (spawn) get no open descriptors
        state = dict(self.__dict__)
        state["_fds"], state["_pid"] = {}, -1
        return state

    def close(self) -> None:
        if self._pid == os.getpid():
            for fd in self._fds.values():
                os.close(fd)
        self._fds = {}

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self.close()


class _ShardBuilds(torch.utils.data.Dataset):
    def __init__(self, store: CropStore, layout: Layout, jobs: list[ShardJob]) -> None:
        self.store, self.layout, self.jobs = store, layout, jobs

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, i: int) -> int:
        self.store.build_shard(self.layout, self.jobs[i])
        return 1


def decode_on_device(jpegs: Sequence[torch.Tensor], device: str | torch.device) -> torch.Tensor:
    """Decode a batch of stored crops (uint8 1-D tensors of JPEG bytes, one size) with ``torchvision.io.decode_jpeg``
    on ``device`` (nvjpeg on CUDA, batched): uint8 ``[B, H, W, 3]`` RGB on ``device``. On the CPU the pixels equal
    :meth:`CropStore.read`'s (OpenCV; both libjpeg-turbo, tested)."""
    import warnings

    from torchvision.io import ImageReadMode, decode_jpeg

    dev = torch.device(device)
    with warnings.catch_warnings():  # torchvision 0.29 points to TorchCodec for image decoding; decode_jpeg stays
        warnings.simplefilter("ignore", UserWarning)
        out = decode_jpeg(list(jpegs), mode=ImageReadMode.RGB, device=dev)
    return torch.stack(list(out)).permute(0, 2, 3, 1).contiguous()  # NHWC in memory, as the workers' crops


def estimate_bytes(bytes_per_crop: float, n_crops: int) -> int:
    """Disk size of a store of ``n_crops`` at a measured ``bytes_per_crop``."""
    return int(round(bytes_per_crop * n_crops))
