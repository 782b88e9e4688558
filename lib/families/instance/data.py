"""Part Two training and gallery data: instance ids ("clear"), segment sampling, padded crops, transforms, text.

Everything here follows the second codebase of the 2021 winner (``docs/reference.md``, P2.1 and P2.5), with the
published quirks kept by default and every correction behind a named option:

- **Instance ids** (:func:`clear_instance_ids`): a track's id is its position in the training list; a track whose
  three sentences (lower-cased) all first appeared in the same earlier track takes that track's id, with no
  re-indexing (so some ids are never used, and the classifier has one output per training track). The published
  default file also re-appended every sentence that is unique in the training set, doubling its sampling weight
  (``duplicate_unique_sentences``).
- **Frames** (:func:`segment_frame_indices`): ``L = n // nseg``; segment ``i`` takes a uniformly random frame of
  ``[i L, min((i + 1) L, n))``. For the gallery (:func:`eval_frame_indices`): ``floor(linspace(0, n, k,
  endpoint=False))``, or every frame when ``n <= k`` and a single frame is embedded at a time.
- **Crop** (:func:`crop_frame`): margin = ``pad`` x the full frame's width/height, clipped (``lib.crops.pad_crop``),
  then a bicubic resize to ``crop_size`` x ``crop_size`` (aspect ratio not kept).
- **Train transform** (:func:`train_transform`): Pad(10) -> RandomCrop -> ToTensor -> Normalize(0.5, 0.5) ->
  RandomErasing(p 0.5, area 0.02-0.4, aspect 0.3-3.3, fill (0.4914, 0.4822, 0.4465) after normalisation). No flip.
  Gallery transform (:func:`eval_transform`): ToTensor -> Normalize(0.5, 0.5).
- **Text** (:func:`prepare_sentence`): Sedan->sedan, suv/Suv->SUV, Jeep->jeep, double space->single, then the
  published wrapping ``"[CLS]" + s + "[SEP]"`` as literal strings (``text_wrap: literal_cls_sep``), which a RoBERTa
  tokenizer treats as plain text around its own ``<s>``/``</s>``; ``text_wrap: none`` leaves the tokenizer's
  special tokens alone (the corrected behaviour).
- **Training-time augmentation** (``data.train_aug``, not in the original, off in every paper configuration): after
  the sentence is chosen, :class:`lib.text.train_aug.SampleAugment` may flip the sample left/right (all ``nseg``
  transformed crops mirrored, left and right swapped in the sentence) and augment its words, with a second RNG from
  the key's seed (:func:`lib.text.train_aug.sample_rng`), so the sample's other draws are the same with or without.
"""

from __future__ import annotations

import functools
import math
import os
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from lib.crops import pad_box, pad_crop
from lib.families.crop_store import CropStore
from lib.frame_io import load_rgb
from lib.text.train_aug import SampleAugment, TextAugConfig

TextWrap = Literal["literal_cls_sep", "none"]

NORM_MEAN = (0.5, 0.5, 0.5)
NORM_STD = (0.5, 0.5, 0.5)
ERASING_FILL = (0.4914, 0.4822, 0.4465)


# --- text ------------------------------------------------------------------------------------------------------
def normalise_text(sentence: str) -> str:
    """The published normalisation: Sedan->sedan, suv/Suv->SUV, Jeep->jeep, double space->single."""
    s = sentence.replace("Sedan", "sedan").replace("suv", "SUV").replace("Suv", "SUV").replace("Jeep", "jeep")
    return s.replace("  ", " ")


def wrap_text(sentence: str, mode: TextWrap = "literal_cls_sep") -> str:
    if mode == "literal_cls_sep":
        return "[CLS]" + sentence + "[SEP]"
    if mode == "none":
        return sentence
    raise ValueError(f"text_wrap: unknown mode {mode!r}; expected 'literal_cls_sep' or 'none'")


def prepare_sentence(sentence: str, wrap: TextWrap = "literal_cls_sep", normalise: bool = True) -> str:
    """Normalise and wrap one sentence exactly as the published training and test scripts do."""
    return wrap_text(normalise_text(sentence) if normalise else sentence, wrap)


# --- instance ids ("clear") ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClearTracks:
    """Training tracks after the "clear" preprocessing."""

    track_ids: list[str]  # uuids in training order (position = default instance id)
    instance_ids: list[int]  # one per track
    sentences: list[list[str]]  # per track, the sentences to sample from (unique ones maybe repeated)
    num_classes: int  # classifier width: number of tracks (published: no re-indexing) or of distinct ids

    @property
    def merged(self) -> int:
        """Tracks that took an earlier track's id."""
        return sum(1 for i, c in enumerate(self.instance_ids) if c != i)


def clear_instance_ids(tracks: Mapping[str, Mapping[str, Any]], order: Sequence[str],
                       duplicate_unique_sentences: bool = True, reindex: bool = False) -> ClearTracks:
    """The published "clear" preprocessing (generate_clear_train.py, and commit 3dd8f3a for the default file).

    ``order`` lists the training track uuids; ids are positions in it. A track whose sentences all (lower-cased)
    first appeared in one and the same earlier track takes that track's id. With ``duplicate_unique_sentences``
    every sentence that occurs once in the whole training set (lower-cased) is appended again to its track's list.
    ``reindex`` (not published) maps the used ids to ``0..K-1`` so the classifier has no dead outputs.
    """
    first: dict[str, int] = {}
    counts: Counter[str] = Counter()
    for pos, uid in enumerate(order):
        nl = tracks[uid].get("nl")
        if not nl:
            raise ValueError(f"track {uid}: field 'nl' is missing or empty; the instance family needs sentences")
        for s in nl:
            key = s.lower()
            first.setdefault(key, pos)
            counts[key] += 1
    ids: list[int] = []
    sentences: list[list[str]] = []
    for pos, uid in enumerate(order):
        nl = list(tracks[uid]["nl"])
        owners = {first[s.lower()] for s in nl}
        owner = next(iter(owners))
        ids.append(owner if len(owners) == 1 and owner < pos else pos)
        if duplicate_unique_sentences:
            nl = nl + [s for s in nl if counts[s.lower()] == 1]
        sentences.append(nl)
    num_classes = len(order)
    if reindex:
        remap = {c: k for k, c in enumerate(sorted(set(ids)))}
        ids = [remap[c] for c in ids]
        num_classes = len(remap)
    return ClearTracks(list(order), ids, sentences, num_classes)


# --- frames ----------------------------------------------------------------------------------------------------
def segment_frame_indices(n_frames: int, nseg: int, rng: random.Random) -> list[int]:
    """One uniformly random frame per segment of ``n_frames // nseg`` frames (the published training sampler).

    A track with fewer frames than segments takes frame 0 for every segment, as the original sampler does
    (docs/reference.md, P2.9); no random draw is made for it.
    """
    if n_frames < 1:
        raise ValueError("a track needs at least one frame")
    if n_frames < nseg:
        return [0] * nseg
    seg = n_frames // nseg
    out = []
    for i in range(nseg):
        lo = min(i * seg, n_frames - 1)
        hi = max(lo + 1, min((i + 1) * seg, n_frames))
        out.append(rng.randrange(lo, hi))
    return out


def eval_frame_indices(n_frames: int, k: int, all_if_short: bool = True) -> list[int]:
    """``floor(linspace(0, n, k, endpoint=False))``; every frame when ``n <= k`` and ``all_if_short``."""
    if n_frames < 1:
        raise ValueError("a track needs at least one frame")
    if all_if_short and n_frames <= k:
        return list(range(n_frames))
    return [int(v) for v in np.floor(np.linspace(0, n_frames, k, endpoint=False))]


FRAMES_HINT = "extract frames with `python -m lib.frames`"


def crop_frame(frame: np.ndarray, box: Sequence[float], pad: float, crop_size: int) -> Image.Image:
    """Padded crop (margin relative to the full frame) resized bicubic to a ``crop_size`` square."""
    crop = pad_crop(frame, box, pad)
    return Image.fromarray(np.ascontiguousarray(crop)).resize((crop_size, crop_size), Image.BICUBIC)


def _gallery_crop(img: Image.Image, box: Sequence[float], pad: float, crop_size: int) -> np.ndarray:
    return np.asarray(crop_frame(np.asarray(img), box, pad, crop_size), dtype=np.uint8)


def pad_crop_extent(box: Sequence[float], frame_w: int, frame_h: int, pad: float, crop_size: int
                    ) -> tuple[float, float, int, int]:
    """The full-size pixels the Part Two crop reads for ``box`` (the padded box clipped to the frame) and its output
    size: what ``lib.families.gallery.crop_extent`` needs to decide a reduced decode."""
    x0, y0, x1, y1 = pad_box(box, pad, frame_w, frame_h)
    return x1 - x0, y1 - y0, int(crop_size), int(crop_size)


def gallery_crop_fn(pad: float, crop_size: int) -> Any:
    """Picklable ``crop_fn(pil_image, box) -> uint8 HWC`` for ``lib.families.gallery`` (the Part Two crop), carrying
    its ``crop_extent`` rule."""
    fn = functools.partial(_gallery_crop, pad=pad, crop_size=crop_size)
    fn.crop_extent = functools.partial(pad_crop_extent, pad=pad, crop_size=crop_size)  # type: ignore[attr-defined]
    return fn


# --- transforms ------------------------------------------------------------------------------------------------
def to_normalised_tensor(img: Image.Image | np.ndarray) -> torch.Tensor:
    """ToTensor + Normalize(0.5, 0.5): uint8 HWC -> float CHW in [-1, 1]."""
    arr = np.asarray(img, dtype=np.float32) / 255.0
    t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    mean = torch.tensor(NORM_MEAN).view(3, 1, 1)
    std = torch.tensor(NORM_STD).view(3, 1, 1)
    return (t - mean) / std


def pad_random_crop(img: Image.Image, pad: int, size: int, rng: random.Random) -> Image.Image:
    """torchvision Pad(pad) (zeros) then RandomCrop(size)."""
    w, h = img.size
    canvas = Image.new("RGB", (w + 2 * pad, h + 2 * pad))
    canvas.paste(img, (pad, pad))
    cw, ch = canvas.size
    x = rng.randint(0, cw - size)
    y = rng.randint(0, ch - size)
    return canvas.crop((x, y, x + size, y + size))


def random_erasing(t: torch.Tensor, rng: random.Random, probability: float = 0.5, sl: float = 0.02,
                   sh: float = 0.4, r1: float = 0.3, fill: Sequence[float] = ERASING_FILL) -> torch.Tensor:
    """The reID RandomErasing used by the original (in place on a normalised CHW tensor; up to 100 attempts)."""
    if rng.uniform(0, 1) > probability:
        return t
    _, h_img, w_img = t.shape
    area = h_img * w_img
    for _ in range(100):
        target = rng.uniform(sl, sh) * area
        aspect = rng.uniform(r1, 1.0 / r1)
        h = int(round(math.sqrt(target * aspect)))
        w = int(round(math.sqrt(target / aspect)))
        if w < w_img and h < h_img:
            y = rng.randint(0, h_img - h)
            x = rng.randint(0, w_img - w)
            for c in range(t.shape[0]):
                t[c, y:y + h, x:x + w] = fill[c % len(fill)]
            return t
    return t


def train_transform(img: Image.Image, crop_size: int, rng: random.Random, pad_pixels: int = 10,
                    erasing_p: float = 0.5) -> torch.Tensor:
    """Pad(10) -> RandomCrop(crop) -> ToTensor -> Normalize(0.5, 0.5) -> RandomErasing."""
    t = to_normalised_tensor(pad_random_crop(img, pad_pixels, crop_size, rng))
    return random_erasing(t, rng, probability=erasing_p)


def eval_transform(img: Image.Image) -> torch.Tensor:
    return to_normalised_tensor(img)


def normalise_batch(crops: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B, H, W, 3]`` -> float ``[B, 3, H, W]``: ToTensor + Normalize(0.5, 0.5), on the crops' device."""
    return (crops.permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.5


# --- the training dataset --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InstanceDataOptions:
    """What the training dataset needs from a configuration (``data`` and ``model`` sections)."""

    crop_size: int
    nseg: int
    pad: float
    multi: int = 10
    pad_pixels: int = 10
    erasing_p: float = 0.5
    text_wrap: TextWrap = "literal_cls_sep"
    normalise_text: bool = True
    train_aug: TextAugConfig | None = None  # None (or all probabilities 0): no augmentation, as published
    crop_store: CropStore | None = None  # crops at crop_size read from the store instead of cut from the frame


class InstanceTrainDataset(torch.utils.data.Dataset):
    """``multi`` x #tracks samples; sample ``i`` is track ``i % n``: ``nseg`` crops, one sentence, the instance id.

    Items are addressed by ``lib.families.base.SampleKey(index, seed)``: every random choice of the sample (frames, crop
    position, erasing, sentence) comes from ``random.Random(seed)`` alone, so a sample is reproducible from its key
    in any worker and after a resume. A plain int ``i`` means ``SampleKey(i, i)``.
    """

    def __init__(self, root: str | os.PathLike[str], tracks: Mapping[str, Mapping[str, Any]], clear: ClearTracks,
                 opts: InstanceDataOptions) -> None:
        self.root = Path(root)
        self.clear = clear
        self.opts = opts
        self.frames = [list(tracks[u]["frames"]) for u in clear.track_ids]
        self.boxes = [list(tracks[u]["boxes"]) for u in clear.track_ids]
        for u, f, b in zip(clear.track_ids, self.frames, self.boxes):
            if len(f) != len(b) or not f:
                raise ValueError(f"track {u}: 'frames' ({len(f)}) and 'boxes' ({len(b)}) must be equal and non-empty")
        self.model_kwargs = {"num_classes": clear.num_classes}
        aug = opts.train_aug
        self.augment = SampleAugment(aug) if aug is not None and aug.active else None

    @property
    def num_tracks(self) -> int:
        return len(self.clear.track_ids)

    def __len__(self) -> int:
        return self.opts.multi * self.num_tracks

    def __getitem__(self, key: Any) -> dict[str, Any]:
        index, seed = (int(key), int(key)) if isinstance(key, int | np.integer) else (int(key[0]), int(key[1]))
        t = index % self.num_tracks
        rng = random.Random(seed)
        o = self.opts
        images = []
        for fi in segment_frame_indices(len(self.frames[t]), o.nseg, rng):
            if o.crop_store is not None:  # the same crop, cut once when the store was built
                crop = Image.fromarray(o.crop_store.read(self.clear.track_ids[t], fi))
            else:
                frame = np.asarray(load_rgb(Path(self.root) / self.frames[t][fi], what=FRAMES_HINT))  # PIL, published
                crop = crop_frame(frame, self.boxes[t][fi], o.pad, o.crop_size)
            images.append(train_transform(crop, o.crop_size, rng, o.pad_pixels, o.erasing_p))
        sentence = rng.choice(self.clear.sentences[t])
        stack = torch.stack(images)
        if self.augment is not None:  # its own RNG from the seed: the draws above are unchanged
            sentence, flip = self.augment(sentence, seed)
            if flip:
                stack = torch.flip(stack, dims=[-1])  # every segment's crop mirrored horizontally
        return {"images": stack, "text": prepare_sentence(sentence, o.text_wrap, o.normalise_text),
                "label": self.clear.instance_ids[t], "track": self.clear.track_ids[t]}


def collate(items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Stack images to ``(B, nseg, 3, H, W)``; texts stay a list (tokenised by the model, padding 'longest')."""
    items = list(items)
    return {"images": torch.stack([it["images"] for it in items]),
            "texts": [it["text"] for it in items],
            "labels": torch.tensor([it["label"] for it in items], dtype=torch.long),
            "tracks": [it["track"] for it in items]}
