"""The Part One training dataset: one sample = one track.

As published: a random frame of the track (its crop, expanded by ``crop_area``, resized to S x S), the track's
motion map (whole map resized to S x S) and one of its first ``sentences_sampled`` (3) sentences at random, from the
nlpaug text (``PREP/text/train-tracks_nlpaug.json``) or the plain ``nl``. Label = the track's index among the train
tracks (ID losses). Images stay uint8 HWC until the model's device. Every random choice comes from the sample key's
seed (:class:`lib.families.base.SampleKey`).

Optional, not in the original (``data.train_aug``, off in every paper configuration): after the sentence is chosen,
:class:`lib.text.train_aug.SampleAugment` may flip the sample left/right (crop and motion map mirrored, left and
right swapped in the sentence) and augment its words, with a second RNG from the key's seed
(:func:`lib.text.train_aug.sample_rng`), so the frame and sentence draws are the same with or without it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lib.cityflow import Layout
from lib.families.base import SampleKey
from lib.families.crop_store import CropStore
from lib.families.dual_stream.cache import CropCache, MotionCache
from lib.families.images import load_crop, load_motion
from lib.io import read_json
from lib.prep import nlpaug_train_tracks
from lib.text.train_aug import SampleAugment, TextAugConfig, sample_rng


def track_sentences(prep_dir: str | os.PathLike[str], tracks: dict[str, dict[str, Any]], ids: Sequence[str],
                    text: str) -> list[list[str]]:
    """Sentences of each track: ``plain`` = the dataset's ``nl``; ``nlpaug`` = the augmented file's entry."""
    if text == "plain":
        out = []
        for u in ids:
            nl = tracks[u].get("nl")
            if not nl:
                raise ValueError(f"train-tracks.json: track {u} has no 'nl' sentences")
            out.append([str(s) for s in nl])
        return out
    if text != "nlpaug":
        raise ValueError(f"data.text must be 'nlpaug' or 'plain', got {text!r}")
    path = nlpaug_train_tracks(prep_dir)
    if not path.exists():
        raise FileNotFoundError(f"{path}: augmented train sentences not found (notebook 03_text_augmentation or "
                                f"python -m lib.text augment writes it); or use data.text: plain")
    aug = read_json(path)
    out = []
    for u in ids:
        if u not in aug:
            raise KeyError(f"{path}: no entry for track {u}")
        v = aug[u]
        nl = v.get("nl") if isinstance(v, dict) else v
        if not isinstance(nl, list) or not nl:
            raise ValueError(f"{path}: track {u}: expected a list of sentences (or {{'nl': [...]}}), got {v!r:.80}")
        out.append([str(s) for s in nl])
    return out


MOTION_TURN_STREAM = 90  # the RNG stream of data.motion_rot90 (lib.text.train_aug.sample_rng), apart from the flip's


class PartOneDataset(torch.utils.data.Dataset):
    """Items ``dataset[SampleKey(index, seed)]`` -> dict(crop, motion, text | sentence, label)."""

    def __init__(self, layout: Layout, prep_dir: str | os.PathLike[str], track_ids: Sequence[str],
                 tracks: dict[str, dict[str, Any]], sentences: list[list[str]], size: int, crop_area: float,
                 motion_variant: str | None, sentences_sampled: int = 3, text_feats: np.ndarray | None = None,
                 crop_cache: CropCache | None = None, motion_cache: MotionCache | None = None,
                 train_aug: TextAugConfig | None = None, num_classes: int | None = None,
                 crop_store: CropStore | None = None, decode_on_device: bool = False,
                 motion_rot90: float = 0.0) -> None:
        self.layout, self.prep_dir = layout, Path(prep_dir)
        self.ids = list(track_ids)
        self.tracks = {u: tracks[u] for u in self.ids}
        self.sentences = sentences
        self.size, self.crop_area, self.motion_variant = size, crop_area, motion_variant
        self.k = sentences_sampled
        self.text_feats = text_feats  # [n, k, E_t] float32, or None (sentences go to the model)
        self.crop_cache, self.motion_cache, self.crop_store = crop_cache, motion_cache, crop_store
        self.decode_on_device = bool(decode_on_device)  # items carry the stored JPEG ("crop_jpeg"), not pixels
        self.motion_rot90 = float(motion_rot90)
        if decode_on_device and crop_store is None:
            raise ValueError("PartOneDataset: decode_on_device needs a crop store")
        if crop_cache is not None and crop_store is not None:
            raise ValueError("PartOneDataset: pass a crop cache or a crop store, not both")
        # ID classes: labels are positions in track_ids; the classifier may be wider (published: the whole file)
        n_cls = len(self.ids) if num_classes is None else int(num_classes)
        if n_cls < len(self.ids):
            raise ValueError(f"num_classes {n_cls} is smaller than the {len(self.ids)} training tracks")
        self.model_kwargs = {"num_classes": n_cls}
        # cached text features: the sentence cannot change (only left/right-free samples may be flipped)
        self.augment = (SampleAugment(train_aug, fixed_text=text_feats is not None)
                        if train_aug is not None and train_aug.active else None)
        for u, s in zip(self.ids, sentences):
            if len(s) < 1:
                raise ValueError(f"track {u}: no sentences")

    def __len__(self) -> int:
        return len(self.ids)

    def choices(self, key: SampleKey) -> tuple[int, int]:
        """(frame position in the track, sentence index) of a sample."""
        uuid = self.ids[key.index]
        rng = np.random.default_rng(key.seed)
        n_frames = len(self.tracks[uuid]["frames"])
        if self.crop_cache is not None:
            positions = self.crop_cache.frame_positions(n_frames)
            j = int(rng.integers(len(positions)))
            frame = positions[j]
        else:
            frame = int(rng.integers(n_frames))
        sent = int(rng.integers(min(self.k, len(self.sentences[key.index]))))
        return frame, sent

    def motion_turns(self, key: SampleKey) -> int:
        """Quarter turns (0-3, counter-clockwise) of a sample's motion map (``motion_rot90``): 0 unless its own coin,
        drawn from an RNG of the sample's seed apart from the frame, sentence and text draws, says turn."""
        if self.motion_rot90 <= 0.0:
            return 0
        rng = sample_rng(key.seed, MOTION_TURN_STREAM)
        return int(rng.integers(1, 4)) if rng.random() < self.motion_rot90 else 0

    def __getitem__(self, key: SampleKey) -> dict[str, Any]:
        index = key.index
        uuid = self.ids[index]
        tr = self.tracks[uuid]
        frame, sent = self.choices(key)
        jpeg = None
        if self.crop_cache is not None:
            row = self.crop_cache.frame_positions(len(tr["frames"])).index(frame)
            crop = np.array(self.crop_cache.load(uuid)[row])
        elif self.crop_store is not None and self.decode_on_device:  # decoded with the batch, on the device
            jpeg = torch.frombuffer(bytearray(self.crop_store.read_bytes(uuid, frame)), dtype=torch.uint8)
        elif self.crop_store is not None:  # every frame stored: the same draw as the per-sample path
            crop = self.crop_store.read(uuid, frame)
        else:
            crop = load_crop(self.layout.frame_path(tr["frames"][frame]), tr["boxes"][frame], self.crop_area,
                             self.size, what=f"track {uuid}, frames[{frame}]")
        sentence, flip = self.sentences[index][sent], False
        if self.augment is not None:
            sentence, flip = self.augment(sentence, key.seed)
        if jpeg is not None:
            item: dict[str, Any] = {"crop_jpeg": jpeg, "flip": flip, "label": index}
        else:
            if flip:
                crop = crop[:, ::-1]
            item = {"crop": torch.from_numpy(np.ascontiguousarray(crop)), "label": index}
        if self.motion_variant is not None:
            mo = (self.motion_cache.load(uuid) if self.motion_cache is not None
                  else load_motion(self.prep_dir, self.motion_variant, uuid, self.size))
            if flip:
                mo = mo[:, ::-1]
            turns = self.motion_turns(key)
            if turns:
                mo = np.rot90(mo, turns, axes=(0, 1))
            item["motion"] = torch.from_numpy(np.ascontiguousarray(mo))
        if self.text_feats is not None:
            item["text"] = torch.from_numpy(self.text_feats[index, sent])  # flipped only if left/right-free
        else:
            item["sentence"] = sentence
        return item


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"label": torch.tensor([s["label"] for s in samples], dtype=torch.long)}
    if "crop_jpeg" in samples[0]:  # decoded on the training device (data.crop_store_decode: device)
        out["crop_jpeg"] = [s["crop_jpeg"] for s in samples]
        out["flip"] = torch.tensor([s["flip"] for s in samples], dtype=torch.bool)
    else:
        out["crop"] = torch.stack([s["crop"] for s in samples])
    if "motion" in samples[0]:
        out["motion"] = torch.stack([s["motion"] for s in samples])
    if "text" in samples[0]:
        out["text"] = torch.stack([s["text"] for s in samples])
    else:
        out["sentence"] = [s["sentence"] for s in samples]
    return out
