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

Two opt-in ways to decode less or elsewhere; the default (``reduced_decode=False``, ``decode_device=None``) is the
published path, PIL at full resolution, unchanged:

- ``reduced_decode=True``: a JPEG frame is decoded at ``1/r`` of its size (libjpeg DCT scaling,
  :func:`lib.frame_io.decode_reduced`) when every request on it allows that ``r`` (its crop region still has at least
  the crop's output pixels at ``1/r``, :func:`frame_reduction`); the crop function then gets the reduced PIL image
  and the box scaled by ``1/r``. Pixels differ a little from the published crops (a DCT-domain downscale, then the
  same resize).
- ``decode_device="cpu"`` or ``"cuda"``: ``torchvision.io.decode_jpeg`` on that device (batched over frames; nvjpeg
  on CUDA), then the Part One crop and bilinear resize as torch ops on that device (:func:`crop_resize_tensor`);
  the batches' crops are uint8 ``[B, H, W, 3]`` on that device. Only the Part One crop (:func:`expand_crop_fn`)
  has this path.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections import defaultdict, deque
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from lib.cityflow import Layout
from lib.crops import expand_box
from lib.families.base import evenly_spaced
from lib.families.images import crop_resize
from lib.frame_io import decode_reduced, load_rgb, reduction_for, scale_box

CropFn = Callable[[Any, Sequence[float]], np.ndarray]
FrameSelector = Callable[[int], Sequence[int]]
# (box, frame_w, frame_h) -> (region_w, region_h, out_w, out_h): the full-size pixels a crop function reads for a box
# and the size it resizes them to
CropExtent = Callable[[Sequence[float], int, int], tuple[float, float, int, int]]


def expand_crop_fn(crop_area: float, size: int | tuple[int, int]) -> CropFn:
    """Part One crop function: expanded box, resized to the model input (picklable)."""
    return functools.partial(_expand_crop, crop_area=crop_area, size=size)


def _expand_crop(img: Any, box: Sequence[float], crop_area: float, size: int | tuple[int, int]) -> np.ndarray:
    return crop_resize(img, box, crop_area, size)


def _out_wh(size: int | tuple[int, int]) -> tuple[int, int]:
    """``size`` (S, or (height, width)) as (width, height)."""
    return (size, size) if isinstance(size, int) else (int(size[1]), int(size[0]))


def _is_part_one_crop(crop_fn: Any) -> bool:
    return isinstance(crop_fn, functools.partial) and crop_fn.func is _expand_crop


def _fn_name(crop_fn: Any) -> str:
    f = getattr(crop_fn, "func", crop_fn)
    return f"{getattr(f, '__module__', '?')}.{getattr(f, '__qualname__', type(f).__name__)}"


def crop_extent(crop_fn: CropFn, box: Sequence[float], frame_w: int, frame_h: int) -> tuple[float, float, int, int]:
    """``(region_w, region_h, out_w, out_h)``: the full-size pixels ``crop_fn`` reads for ``box`` and the size it
    resizes them to. Known for the Part One crop (:func:`expand_crop_fn`: the expanded box, black outside the frame
    included); any other crop function carries its own rule as a ``crop_extent`` attribute (a :data:`CropExtent`; a
    ``functools.partial`` takes attributes and pickles them), as the Part Two gallery crop does
    (``lib.families.instance.data.gallery_crop_fn``: the padded box clipped to the frame)."""
    own = getattr(crop_fn, "crop_extent", None)
    if callable(own):
        return own(box, frame_w, frame_h)
    if _is_part_one_crop(crop_fn):
        x0, y0, x1, y1 = expand_box(box, crop_fn.keywords["crop_area"])
        return (x1 - x0, y1 - y0, *_out_wh(crop_fn.keywords["size"]))
    raise ValueError(f"reduced_decode: crop function {_fn_name(crop_fn)} has no known crop extent (give it a "
                     f"crop_extent attribute)")


def frame_reduction(crop_fn: CropFn, boxes: Sequence[Sequence[float]], frame_w: int, frame_h: int) -> int:
    """The reduction ``r`` (1, 2, 4 or 8) a frame may be decoded at for all of ``boxes``: the smallest of what each
    box's crop allows (:func:`lib.frame_io.reduction_for` of its :func:`crop_extent`), so one decode serves them
    all."""
    r = 8
    for box in boxes:
        r = min(r, reduction_for(frame_w, frame_h, *crop_extent(crop_fn, box, frame_w, frame_h)))
        if r == 1:
            break
    return r


def crop_resize_tensor(img: torch.Tensor, box: Sequence[float], crop_area: float, size: int | tuple[int, int]
                       ) -> torch.Tensor:
    """The Part One crop in torch ops on ``img``'s device: ``img`` uint8 ``[3, H, W]`` (RGB), the expanded box
    (:func:`lib.crops.expand_box`) with zeros outside the frame (PIL's crop), resized to ``size`` (S, or (height,
    width)) with ``interpolate(mode="bilinear", antialias=True)`` in float32 and rounded: uint8 ``[h, w, 3]``.
    Against PIL's ``BILINEAR`` resize (:func:`lib.families.images.crop_resize`) it differs by one level on about a
    tenth of the values, never more (measured; ``antialias=False`` differs by up to ~30 levels when shrinking)."""
    _, h, w = img.shape
    x0, y0, x1, y1 = expand_box(box, crop_area)
    rw, rh = max(1, x1 - x0), max(1, y1 - y0)
    region = torch.zeros((1, 3, rh, rw), dtype=torch.float32, device=img.device)
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if sx1 > sx0 and sy1 > sy0:
        region[0, :, sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = img[:, sy0:sy1, sx0:sx1]
    ow, oh = _out_wh(size)
    out = torch.nn.functional.interpolate(region, size=(oh, ow), mode="bilinear", align_corners=False,
                                          antialias=True)
    return out[0].round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0)


def to_device(crops: torch.Tensor, device: str | torch.device) -> torch.Tensor:
    """``crops`` on ``device``; from the CPU to a CUDA device through pinned memory with a non-blocking copy (when
    CUDA is available), so the copy overlaps the next batch's decoding."""
    dev = torch.device(device)
    if crops.device == dev:
        return crops
    if dev.type == "cuda" and crops.device.type == "cpu" and torch.cuda.is_available():
        return crops.pin_memory().to(dev, non_blocking=True)
    return crops.to(dev)


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
                 track_ids: list[str], reduced_decode: bool = False) -> None:
        self.layout, self.crop_fn, self.decode_once, self.track_ids = layout, crop_fn, decode_once, track_ids
        self.reduced_decode = reduced_decode
        if decode_once:
            self.items = [(f, reqs) for f, reqs in plan.items()]
        else:
            self.items = [(f, [r]) for f, reqs in plan.items() for r in reqs]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        frame, reqs = self.items[i]
        what = f"track {self.track_ids[reqs[0].track]}"
        if self.reduced_decode:
            img, r = decode_frame_reduced(self.layout.frame_path(frame), self.crop_fn, [q.box for q in reqs], what)
            crops = np.stack([self.crop_fn(img, q.box if r == 1 else scale_box(q.box, r)) for q in reqs])
        else:
            img = load_rgb(self.layout.frame_path(frame), what=what)
            crops = np.stack([self.crop_fn(img, r.box) for r in reqs])
        return (np.array([r.track for r in reqs], dtype=np.int64), np.array([r.position for r in reqs],
                                                                           dtype=np.int64), crops)


def decode_frame_reduced(path: str | os.PathLike[str], crop_fn: CropFn, boxes: Sequence[Sequence[float]],
                         what: str = "") -> tuple[Any, int]:
    """``(PIL RGB image, r)``: the frame decoded at ``1/r`` (:func:`frame_reduction` of ``boxes``; its header is read
    first for the size), or at full size by :func:`lib.frame_io.load_rgb` when ``r`` is 1 or the file is not a
    JPEG. Crop it with the boxes scaled by ``1/r`` (:func:`lib.frame_io.scale_box`)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            fmt, (w, h) = im.format, im.size
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: image not found" + (f" ({what})" if what else "")) from None
    except OSError as e:
        raise OSError(f"{path}: cannot read image header ({e})") from None
    r = frame_reduction(crop_fn, boxes, w, h) if fmt == "JPEG" else 1
    if r == 1:
        return load_rgb(path, what=what), 1
    return Image.fromarray(decode_reduced(path, r, "rgb", what=what or "frame")), r


class _EncodedFrames(torch.utils.data.Dataset):
    """Item = one frame file's bytes as a uint8 tensor (for ``torchvision.io.decode_jpeg``)."""

    def __init__(self, layout: Layout, items: list[tuple[str, list[CropRequest]]], track_ids: list[str]) -> None:
        self.layout, self.items, self.track_ids = layout, items, track_ids

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> torch.Tensor:
        frame, reqs = self.items[i]
        path = self.layout.frame_path(frame)
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: image not found (track {self.track_ids[reqs[0].track]})") from None
        return torch.frombuffer(bytearray(data), dtype=torch.uint8)


DEVICE_DECODE_FRAMES = 32  # frames per batched decode_jpeg call of the device path


def _device_crops(layout: Layout, plan: dict[str, list[CropRequest]], crop_fn: CropFn, device: str,
                  threads: int, track_ids: list[str], progress: bool
                  ) -> Iterator[tuple[np.ndarray, np.ndarray, torch.Tensor]]:
    """Per frame, in the plan's order: ``(track [n], position [n], crops uint8 [n, H, W, 3] on device)``."""
    from torchvision.io import ImageReadMode, decode_jpeg

    crop_area, size = crop_fn.keywords["crop_area"], crop_fn.keywords["size"]  # type: ignore[attr-defined]
    items = list(plan.items())
    encoded = _threaded(_EncodedFrames(layout, items, track_ids), len(items), threads)
    bar = None
    if progress:
        from lib.progress import progress_bar

        bar = progress_bar(total=len(items), desc="gallery frames", unit="frame", leave=False)
    try:
        for lo in range(0, len(items), DEVICE_DECODE_FRAMES):
            chunk = items[lo:lo + DEVICE_DECODE_FRAMES]
            data = [next(encoded) for _ in chunk]
            try:
                with warnings.catch_warnings():  # torchvision 0.29 deprecates its image decoders (for TorchCodec)
                    warnings.simplefilter("ignore", DeprecationWarning)
                    images = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
            except RuntimeError as e:
                raise RuntimeError(f"decode_device={device!r}: decode_jpeg failed on frames {chunk[0][0]} .. "
                                   f"{chunk[-1][0]} ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                                   ) from None
            for (_frame, reqs), img in zip(chunk, images):
                crops = torch.stack([crop_resize_tensor(img, q.box, crop_area, size) for q in reqs])
                yield (np.array([q.track for q in reqs], dtype=np.int64),
                       np.array([q.position for q in reqs], dtype=np.int64), crops)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        encoded.close()  # stops the reading threads when the consumer stops early
        if bar is not None:
            bar.close()


def default_decode_threads() -> int:
    """Decoding threads of the in-process loader: one per core, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


def _threaded(ds: torch.utils.data.Dataset, n: int, threads: int) -> Generator[Any, None, None]:
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
                      decode_threads: int | None = None, reduced_decode: bool = False,
                      decode_device: str | None = None, crops_device: str | None = None
                      ) -> Iterator[tuple[np.ndarray, np.ndarray, torch.Tensor]]:
    """Yield ``(track_index [B], frame_position [B], crops uint8 [B, H, W, 3])`` covering every request once.

    ``workers > 0``: DataLoader worker processes decode; ``workers == 0``: ``decode_threads`` threads of this
    process (default :func:`default_decode_threads`; 1 = the plain loop). The batches are the same either way.

    The defaults are the published decode (PIL, full resolution). Options, each off by default:

    - ``reduced_decode``: decode a JPEG frame at 1/2, 1/4 or 1/8 of its size when every crop of that frame still
      has at least its output's pixels there (:func:`frame_reduction`); its crops get the reduced image and the
      boxes scaled by ``1/r``. The crop function must have a known extent (:func:`crop_extent`).
    - ``decode_device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...): ``torchvision.io.decode_jpeg`` on that device,
      :data:`DEVICE_DECODE_FRAMES` frames per call (files read by ``decode_threads`` threads; ``workers`` is not
      used), then :func:`crop_resize_tensor` there; the crops are on that device. Part One crop only
      (:func:`expand_crop_fn`); not with ``reduced_decode`` nor ``decode_once=False``.
    - ``crops_device``: move each batch's crops there (:func:`to_device`: pinned memory and a non-blocking copy to
      CUDA). The crops are NHWC uint8, i.e. channels-last once the model permutes them to NCHW.
    """
    if decode_device is not None:
        if not _is_part_one_crop(crop_fn):
            raise ValueError(f"decode_device={decode_device!r}: only the Part One crop (expand_crop_fn) has a device "
                             f"path, not {_fn_name(crop_fn)}")
        if reduced_decode:
            raise ValueError(f"decode_device={decode_device!r}: reduced_decode is a CPU (libjpeg) option; use one")
        if not decode_once:
            raise ValueError(f"decode_device={decode_device!r}: decodes each frame once; decode_once=False is not "
                             f"supported")
    plan = plan_requests(tracks, frames_per_track, select)
    threads = default_decode_threads() if decode_threads is None else decode_threads
    if decode_device is not None:
        yield from _batched(_device_crops(layout, plan, crop_fn, decode_device, threads, list(tracks), progress),
                            batch_size, crops_device)
        return
    ds = _FrameGroups(layout, plan, crop_fn, decode_once, list(tracks), reduced_decode)
    it: Any
    if workers > 0:
        it = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers, generator=torch.Generator(),
                                         prefetch_factor=8)
    else:
        it = _threaded(ds, len(ds), threads)
    if progress:
        from lib.progress import progress_bar

        it = progress_bar(it, total=len(ds), desc="gallery frames", unit="frame", leave=False)
    if crops_device is None:
        yield from _batched_numpy(it, batch_size)
    else:
        for t, p, c in _batched_numpy(it, batch_size):
            yield t, p, to_device(c, crops_device)


def _batched_numpy(it: Any, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray, torch.Tensor]]:
    """Per-frame ``(track, position, crops)`` arrays -> batches of ``batch_size`` (the last one shorter)."""
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


def _batched(it: Iterator[tuple[np.ndarray, np.ndarray, torch.Tensor]], batch_size: int,
             crops_device: str | None) -> Iterator[tuple[np.ndarray, np.ndarray, torch.Tensor]]:
    """Per-frame ``(track, position, crop tensor)`` -> batches of ``batch_size``, the crops kept on their device."""
    buf: list[tuple[np.ndarray, np.ndarray, torch.Tensor]] = []
    n = 0

    def emit(k: int) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
        nonlocal buf, n
        tt = np.concatenate([b[0] for b in buf])
        pp = np.concatenate([b[1] for b in buf])
        cc = torch.cat([b[2] for b in buf])
        buf = [(tt[k:], pp[k:], cc[k:])] if k < len(tt) else []
        n -= k
        crops = cc[:k].contiguous()
        return tt[:k], pp[:k], crops if crops_device is None else to_device(crops, crops_device)

    for t, p, c in it:
        buf.append((t, p, c))
        n += len(t)
        while n >= batch_size:
            yield emit(batch_size)
    if n:
        yield emit(n)


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
                 select: FrameSelector | None = None, decode_threads: int | None = None,
                 reduced_decode: bool = False, decode_device: str | None = None,
                 crops_device: str | None = None) -> np.ndarray:
    """One feature per track ``[N, D]`` (order of ``tracks``) from its frames' crops. ``reduced_decode``,
    ``decode_device`` and ``crops_device`` are :func:`iter_crop_batches`'s options (off by default: the published
    full-resolution PIL decode)."""
    agg = TrackAggregator(len(tracks), aggregate)
    for t, _p, crops in iter_crop_batches(layout, tracks, crop_fn, frames_per_track, batch_size, workers,
                                          decode_once, progress, select, decode_threads, reduced_decode,
                                          decode_device, crops_device):
        agg.add(t, embed_fn(t, crops).float().cpu().numpy())
    return agg.result()
