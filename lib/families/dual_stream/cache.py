"""Per-track caches of model-ready inputs, so that training does not decode a full frame per sample.

- crops: ``CACHE/crops/s<S>_c<CROP_AREA>_f<all|K>/<track_uuid>.npy`` uint8 ``[F, S, S, 3]``, the crop of every
  frame of the track (or of ``K`` evenly spaced frames) exactly as :func:`lib.families.images.load_crop` makes it;
- motion maps: ``CACHE/motion/<variant>_s<S>/<track_uuid>.npy`` uint8 ``[S, S, 3]``.

Each file is made and written atomically by one worker (a DataLoader process, or without them one of this process's
decoding threads, :func:`lib.families.gallery.default_decode_threads`); a finished file is kept (the build resumes)
only while it was made from the track's current annotation: every crop folder keeps ``index.json`` ``{track: key}``, the
:func:`lib.io.content_hash` of the track's ``frames`` and ``boxes``, written after a build; a track whose entry
changed (or that has no key) is rebuilt, the others are reused. ``force`` (or ``CFNL_FORCE=1``) rebuilds every
file. The cache is a pure speed-up: training on it sees the same pixels
as decoding the frames (tested). Safe to delete.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lib.cityflow import Layout
from lib.families.base import evenly_spaced
from lib.families.gallery import default_decode_threads
from lib.families.images import load_crop, load_motion
from lib.io import atomic_path, content_hash, force_requested, path_in, read_json, write_json
from lib.prep import motion_map_file

INDEX = "index.json"


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, arr)


def _npy_rows(path: Path) -> int | None:
    try:
        return int(np.load(path, mmap_mode="r").shape[0])
    except (OSError, ValueError):
        return None


class CropCache:
    def __init__(self, cache_dir: str | os.PathLike[str], crop_area: float, size: int, max_frames: int | None = None
                 ) -> None:
        self.crop_area, self.size, self.max_frames = float(crop_area), int(size), max_frames
        self.folder = Path(cache_dir) / "crops" / f"s{size}_c{crop_area:.4f}_f{max_frames or 'all'}"

    def path(self, uuid: str) -> Path:
        return path_in(self.folder, uuid, ".npy")

    def frame_positions(self, n_frames: int) -> list[int]:
        """Positions (in the track's frame list) of the cached frames."""
        return evenly_spaced(n_frames, self.max_frames)

    @staticmethod
    def key(track: dict[str, Any]) -> str:
        """What a track's crops are computed from: its frames and boxes."""
        return content_hash({"frames": track["frames"], "boxes": track["boxes"]})

    def index(self) -> dict[str, str]:
        p = self.folder / INDEX
        if not hasattr(self, "_index"):
            try:
                self._index: dict[str, str] = dict(read_json(p)) if p.exists() else {}
            except ValueError:
                self._index = {}
        return self._index

    def record(self, keys: dict[str, str]) -> None:
        """Add the keys of freshly built tracks to ``index.json``."""
        index = {**self.index(), **keys}
        write_json(self.folder / INDEX, dict(sorted(index.items())), indent=None)
        self._index = index

    def is_complete(self, uuid: str, track: dict[str, Any]) -> bool:
        p = self.path(uuid)
        return (p.exists() and self.index().get(uuid) == self.key(track)
                and _npy_rows(p) == len(self.frame_positions(len(track["frames"]))))

    def load(self, uuid: str) -> np.ndarray:
        return np.load(self.path(uuid), mmap_mode="r")

    def make(self, layout: Layout, uuid: str, track: dict[str, Any]) -> np.ndarray:
        pos = self.frame_positions(len(track["frames"]))
        out = np.empty((len(pos), self.size, self.size, 3), dtype=np.uint8)
        for j, i in enumerate(pos):
            out[j] = load_crop(layout.frame_path(track["frames"][i]), track["boxes"][i], self.crop_area, self.size,
                               what=f"track {uuid}, frames[{i}]")
        return out


class MotionCache:
    def __init__(self, cache_dir: str | os.PathLike[str], prep_dir: str | os.PathLike[str], variant: str, size: int
                 ) -> None:
        self.prep_dir, self.variant, self.size = Path(prep_dir), variant, int(size)
        self.folder = Path(cache_dir) / "motion" / f"{variant}_s{size}"

    def path(self, uuid: str) -> Path:
        return path_in(self.folder, uuid, ".npy")

    def is_complete(self, uuid: str, track: dict[str, Any]) -> bool:
        p = self.path(uuid)
        if not p.exists():
            return False
        src = motion_map_file(self.prep_dir, self.variant, uuid)
        return not src.exists() or src.stat().st_mtime <= p.stat().st_mtime

    def load(self, uuid: str) -> np.ndarray:
        return np.load(self.path(uuid))

    def make(self, layout: Layout, uuid: str, track: dict[str, Any]) -> np.ndarray:
        return load_motion(self.prep_dir, self.variant, uuid, self.size)


class _BuildItems(torch.utils.data.Dataset):
    def __init__(self, caches: Sequence[CropCache | MotionCache], layout: Layout,
                 todo: list[tuple[int, str]], tracks: dict[str, dict[str, Any]]) -> None:
        self.caches, self.layout, self.todo, self.tracks = caches, layout, todo, tracks

    def __len__(self) -> int:
        return len(self.todo)

    def __getitem__(self, i: int) -> int:
        ci, uuid = self.todo[i]
        cache = self.caches[ci]
        arr = cache.make(self.layout, uuid, self.tracks[uuid])
        _save_npy(cache.path(uuid), arr)
        return 1


def build_caches(caches: Sequence[CropCache | MotionCache], layout: Layout, tracks: dict[str, dict[str, Any]],
                 workers: int = 0, log: Callable[[str], None] = print, progress: bool = True, force: bool = False
                 ) -> dict[str, Any]:
    """Write every missing or stale cache file for ``tracks`` (all of them with ``force`` or ``CFNL_FORCE=1``);
    returns counts and the time taken."""
    t0 = time.perf_counter()
    force = force_requested(force)
    todo = [(ci, u) for ci, c in enumerate(caches) for u, tr in tracks.items() if force or not c.is_complete(u, tr)]
    if todo:
        for c in caches:
            c.folder.mkdir(parents=True, exist_ok=True)
        log(f"building {len(todo)} cache file(s) in {', '.join(str(c.folder) for c in caches)}")
        items = _BuildItems(caches, layout, todo, tracks)
        with contextlib.ExitStack() as stack:
            it: Iterable[Any]
            if workers > 0:
                it = torch.utils.data.DataLoader(items, batch_size=None, num_workers=workers,
                                                 generator=torch.Generator())
            else:
                # no worker processes: decoding threads of this process (PIL decodes without the GIL; each file is
                # made and written by one thread, so the files are those of the plain loop)
                pool = stack.enter_context(ThreadPoolExecutor(default_decode_threads()))
                it = pool.map(items.__getitem__, range(len(items)))
            if progress:
                from lib.progress import progress_bar

                it = progress_bar(it, total=len(todo), desc="cache", unit="file", leave=False)
            for _ in it:
                pass
        for ci, c in enumerate(caches):
            if isinstance(c, CropCache):
                c.record({u: c.key(tracks[u]) for cj, u in todo if cj == ci})
    return {"cache_files_built": len(todo), "cache_files": len(caches) * len(tracks),
            "cache_build_s": time.perf_counter() - t0}
