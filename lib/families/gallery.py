"""Track crops for embedding: decode each frame once, crop every requested box in it, batch the crops.

A gallery request is a set of tracks (``{uuid: {"frames": [...], "boxes": [...]}}``) and, per track, which of its
frames to use (every frame, or ``frames_per_track`` evenly spaced ones). Tracks of one camera often share frames, so
the work is grouped by frame file: a DataLoader worker decodes a frame once and returns the crops of every
(track, box) that uses it. Without worker processes (``workers=0``: the default on <= 2 cores, where sending every
frame's crops between processes costs more than it saves) the frames are decoded by a small pool of threads in the
main process instead: JPEG decoding and resizing run outside the GIL, so the cores decode in parallel, and the
batches come out in the same order as with one thread. ``decode_once=False`` is the straightforward way (one
decode per crop), kept for the benchmark and as a reference.

The crop itself is the family's: a picklable ``crop_fn(pil_image, box) -> uint8 HWC array`` (already at model input
size). :func:`embed_tracks` runs a family's ``embed_fn(track_index, crops_uint8) -> [B, D]`` over the batches and
aggregates each track's frame embeddings (``mean``: Part One; ``normalized_sum``: Part Two).
"""

from __future__ import annotations

import functools
import os
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from lib.cityflow import Layout
from lib.families.base import evenly_spaced
from lib.families.images import crop_resize
from lib.frame_io import load_rgb

CropFn = Callable[[Any, Sequence[float]], np.ndarray]
FrameSelector = Callable[[int], Sequence[int]]


def expand_crop_fn(crop_area: float, size: int | tuple[int, int]) -> CropFn:
    """Part One crop function: expanded box, resized to the model input (picklable)."""
    return functools.partial(_expand_crop, crop_area=crop_area, size=size)


def _expand_crop(img: Any, box: Sequence[float], crop_area: float, size: int | tuple[int, int]) -> np.ndarray:
    return crop_resize(img, box, crop_area, size)


@dataclass(frozen=True)
class CropRequest:
    track: int  # index of the track in the request
    position: int  # position in the track's frame list
    box: tuple[float, float, float, float]


def plan_requests(tracks: dict[str, dict[str, Any]], frames_per_track: int | None,
                  select: FrameSelector | None = None) -> dict[str, list[CropRequest]]:
    """``{frame path: [CropRequest, ...]}`` in a deterministic order (tracks' order, then frame order).

    ``select(n_frames) -> positions`` overrides the default ``evenly_spaced(n_frames, frames_per_track)`` (a family
    with its own published frame rule, e.g. Part Two's ``floor(linspace(0, n, k, endpoint=False))``)."""
    plan: dict[str, list[CropRequest]] = defaultdict(list)
    for ti, (uuid, tr) in enumerate(tracks.items()):
        frames, boxes = tr["frames"], tr["boxes"]
        if len(frames) != len(boxes):
            raise ValueError(f"track {uuid}: {len(frames)} frames but {len(boxes)} boxes")
        if not frames:
            raise ValueError(f"track {uuid}: no frames")
        for pos in (select(len(frames)) if select is not None else evenly_spaced(len(frames), frames_per_track)):
            plan[frames[pos]].append(CropRequest(ti, pos, tuple(float(v) for v in boxes[pos])))
    return dict(plan)


class _FrameGroups(torch.utils.data.Dataset):
    """Item = one frame file -> crops of every request in it (``decode_once``) or one request per item."""

    def __init__(self, layout: Layout, plan: dict[str, list[CropRequest]], crop_fn: CropFn, decode_once: bool,
                 track_ids: list[str]) -> None:
        self.layout, self.crop_fn, self.decode_once, self.track_ids = layout, crop_fn, decode_once, track_ids
        if decode_once:
            self.items = [(f, reqs) for f, reqs in plan.items()]
        else:
            self.items = [(f, [r]) for f, reqs in plan.items() for r in reqs]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        frame, reqs = self.items[i]
        img = load_rgb(self.layout.frame_path(frame), what=f"track {self.track_ids[reqs[0].track]}")
        crops = np.stack([self.crop_fn(img, r.box) for r in reqs])
        return (np.array([r.track for r in reqs], dtype=np.int64), np.array([r.position for r in reqs],
                                                                           dtype=np.int64), crops)


def default_decode_threads() -> int:
    """Decoding threads of the in-process loader: one per core, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


def _threaded(ds: torch.utils.data.Dataset, n: int, threads: int) -> Iterator[Any]:
    """``ds[0], ds[1], ...`` in order, decoded ahead by ``threads`` threads (at most ``4 x threads`` in flight)."""
    if threads <= 1:
        yield from (ds[i] for i in range(n))
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="gallery-decode") as pool:
        pending: deque[Any] = deque()
        nxt = 0
        while nxt < n or pending:
            while nxt < n and len(pending) < 4 * threads:
                pending.append(pool.submit(ds.__getitem__, nxt))
                nxt += 1
            yield pending.popleft().result()


def iter_crop_batches(layout: Layout, tracks: dict[str, dict[str, Any]], crop_fn: CropFn,
                      frames_per_track: int | None = None, batch_size: int = 64, workers: int = 0,
                      decode_once: bool = True, progress: bool = False, select: FrameSelector | None = None,
                      decode_threads: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, torch.Tensor]]:
    """Yield ``(track_index [B], frame_position [B], crops uint8 [B, H, W, 3])`` covering every request once.

    ``workers > 0``: DataLoader worker processes decode; ``workers == 0``: ``decode_threads`` threads of this
    process (default :func:`default_decode_threads`; 1 = the plain loop). The batches are the same either way.
    """
    plan = plan_requests(tracks, frames_per_track, select)
    ds = _FrameGroups(layout, plan, crop_fn, decode_once, list(tracks))
    it: Any
    if workers > 0:
        it = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers, generator=torch.Generator(),
                                         prefetch_factor=8)
    else:
        it = _threaded(ds, len(ds), default_decode_threads() if decode_threads is None else decode_threads)
    if progress:
        from lib.progress import progress_bar

        it = progress_bar(it, total=len(ds), desc="gallery frames", unit="frame", leave=False)
    buf_t: list[np.ndarray] = []
    buf_p: list[np.ndarray] = []
    buf_c: list[np.ndarray] = []
    n = 0
    for t, p, c in it:
        t, p, c = np.asarray(t), np.asarray(p), np.asarray(c)
        buf_t.append(t)
        buf_p.append(p)
        buf_c.append(c)
        n += len(t)
        while n >= batch_size:
            tt, pp, cc = np.concatenate(buf_t), np.concatenate(buf_p), np.concatenate(buf_c)
            yield tt[:batch_size], pp[:batch_size], torch.from_numpy(np.ascontiguousarray(cc[:batch_size]))
            buf_t, buf_p, buf_c = [tt[batch_size:]], [pp[batch_size:]], [cc[batch_size:]]
            n -= batch_size
    if n:
        yield (np.concatenate(buf_t), np.concatenate(buf_p),
               torch.from_numpy(np.ascontiguousarray(np.concatenate(buf_c))))


class TrackAggregator:
    """Accumulates frame embeddings per track: ``mean`` (Part One: mean, not re-normalised) or ``normalized_sum``
    (Part Two: each frame L2-normalised, summed, then normalised)."""

    def __init__(self, n_tracks: int, how: Literal["mean", "normalized_sum"] = "mean") -> None:
        self.how = how
        self.sums: np.ndarray | None = None
        self.counts = np.zeros(n_tracks, dtype=np.int64)
        self.n = n_tracks

    def add(self, track_idx: np.ndarray, feats: np.ndarray) -> None:
        feats = np.asarray(feats, dtype=np.float64)
        if self.how == "normalized_sum":
            feats = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
        if self.sums is None:
            self.sums = np.zeros((self.n, feats.shape[1]), dtype=np.float64)
        np.add.at(self.sums, track_idx, feats)
        np.add.at(self.counts, track_idx, 1)

    def result(self) -> np.ndarray:
        if self.sums is None or (self.counts == 0).any():
            missing = np.flatnonzero(self.counts == 0)
            raise RuntimeError(f"no frame embedded for {len(missing) if self.sums is not None else self.n} track(s)")
        if self.how == "mean":
            out = self.sums / self.counts[:, None]
        else:
            out = self.sums / np.maximum(np.linalg.norm(self.sums, axis=1, keepdims=True), 1e-12)
        return out.astype(np.float32)


@torch.no_grad()
def embed_tracks(layout: Layout, tracks: dict[str, dict[str, Any]], crop_fn: CropFn,
                 embed_fn: Callable[[np.ndarray, torch.Tensor], torch.Tensor],
                 aggregate: Literal["mean", "normalized_sum"] = "mean", frames_per_track: int | None = None,
                 batch_size: int = 64, workers: int = 0, decode_once: bool = True, progress: bool = False,
                 select: FrameSelector | None = None, decode_threads: int | None = None) -> np.ndarray:
    """One feature per track ``[N, D]`` (order of ``tracks``) from its frames' crops."""
    agg = TrackAggregator(len(tracks), aggregate)
    for t, _p, crops in iter_crop_batches(layout, tracks, crop_fn, frames_per_track, batch_size, workers,
                                          decode_once, progress, select, decode_threads):
        agg.add(t, embed_fn(t, crops).float().cpu().numpy())
    return agg.result()
