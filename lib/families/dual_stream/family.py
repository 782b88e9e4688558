"""The ``dual_stream`` family (Part One) implementation of the :class:`lib.families.base.Family` protocol.

- ``prepare``: crop cache + motion-map cache (``PREP/cache``, when ``data.cache_crops``) and the frozen text
  features of every train/val sentence (``PREP/cache/text``, when ``data.cache_text``);
- ``train_dataset``: :class:`lib.families.dual_stream.data.PartOneDataset`;
- ``compute_loss``: the three symmetric InfoNCE terms on embeddings gathered over all ranks, plus the configured
  ID losses (weight ``model.id_loss_weight``) on this rank's samples;
- ``optimizer_and_scheduler``: AdamW (lr, weight decay) on the trainable parameters, linear warm-up from
  ``warmup_lr`` then step decay, in steps (:mod:`lib.families.dual_stream.schedule`);
- ``embed_gallery``: merged visual embedding of every selected frame's crop (with its track's motion map, whose
  stream is computed once per track), mean over the track's frames (not re-normalised);
- ``embed_queries``: each sentence's L2-normalised text embedding; ``similarity``: mean over sentences of q . g.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from lib.distributed import gather_with_grad, is_distributed, unwrap
from lib.families.base import TrainContext, evenly_spaced, mean_sentence_similarity, register
from lib.families.crop_store import CropStore, decode_on_device
from lib.families.dual_stream.cache import CropCache, MotionCache, build_caches
from lib.families.dual_stream.config import (
    DualStreamDataCfg,
    DualStreamEmbedCfg,
    DualStreamModelCfg,
    DualStreamTrainCfg,
)
from lib.families.dual_stream.data import PartOneDataset, collate, track_sentences
from lib.families.dual_stream.loss import id_loss, symmetric_infonce
from lib.families.dual_stream.model import DualStreamModel, build_dual_stream
from lib.families.dual_stream.schedule import epochs_to_steps, warmup_step_decay
from lib.families.gallery import TrackAggregator, embed_tracks, expand_crop_fn
from lib.families.text_encoders import FrozenTextEncoder, GroupFeatureCache, TextFeatureCache

CONFIG_DEFAULT = "config"


def _caches(cfg: Any, ctx: TrainContext) -> tuple[CropCache, MotionCache | None]:
    size = cfg.model.image_size
    crop = CropCache(ctx.cache_dir, cfg.data.crop_area, size, cfg.data.crop_cache_frames)
    motion = (MotionCache(ctx.cache_dir, ctx.prep_dir, cfg.data.motion_variant, size)
              if cfg.model.motion_stream else None)
    return crop, motion


def _dataset_track(ctx: TrainContext, uuid: str) -> dict[str, Any] | None:
    """The dataset's own entry for ``uuid`` (train or test tracks file), None when it has none."""
    if uuid in ctx.train_tracks:
        return ctx.train_tracks[uuid]
    return ctx.test_tracks.get(uuid) if ctx.data_root.test_tracks.exists() else None


def _is_dataset_track(ctx: TrainContext, uuid: str, track: dict[str, Any]) -> bool:
    """``track`` is the dataset's own entry for ``uuid`` (not a subset of its frames): its crops belong in the shared
    crop cache, whose files hold every frame of a track."""
    t = _dataset_track(ctx, uuid)
    return t is not None and (t is track or CropCache.key(t) == CropCache.key(track))


def _cache_rows(ctx: TrainContext, cache: CropCache, uuid: str, track: dict[str, Any], k: int | None
                ) -> list[int] | None:
    """The rows of ``cache`` that hold ``k`` evenly spaced frames of ``track`` (all with None), or None when they
    are not cached. A subset of a cached track's frames (lib.embed's train split) reads the whole track's rows of
    those frames: the same crops as decoding them."""
    if cache.is_complete(uuid, track):
        return evenly_spaced(len(cache.frame_positions(len(track["frames"]))), k)
    whole = _dataset_track(ctx, uuid)
    if cache.max_frames is not None or whole is None or not cache.is_complete(uuid, whole):
        return None
    row = {f: i for i, f in enumerate(whole["frames"])}
    idx = [row.get(f) for f in track["frames"]]
    if any(i is None or whole["boxes"][i] != b for i, b in zip(idx, track["boxes"], strict=True)):
        return None
    return [int(idx[j]) for j in evenly_spaced(len(idx), k)]  # type: ignore[arg-type]


def batch_crops(batch: dict[str, Any], dev: torch.device) -> torch.Tensor:
    """uint8 ``[B, S, S, 3]`` crops of a training batch on ``dev``: moved, or (``data.crop_store_decode: device``)
    decoded there from the stored JPEGs, then mirrored where the sample was flipped."""
    if "crop_jpeg" not in batch:
        return batch["crop"].to(dev, non_blocking=True)
    crops = decode_on_device(batch["crop_jpeg"], dev)
    flip = batch["flip"].to(dev)
    return torch.where(flip[:, None, None, None], crops.flip(2), crops) if bool(flip.any()) else crops


def crop_store(cfg: Any, ctx: TrainContext) -> CropStore:
    """The configuration's crop store: expanded box (``data.crop_area``) resized to ``model.image_size``."""
    c, s = cfg.data.crop_area, cfg.model.image_size
    return CropStore(ctx.cache_dir, f"expand_c{c:.4f}_s{s}", expand_crop_fn(c, s), cfg.data.crop_store_quality)


def _text_cache(cfg: Any, ctx: TrainContext) -> TextFeatureCache:
    m = cfg.model
    enc = FrozenTextEncoder(m.text_encoder, m.text_pooling, m.text_max_length, device=ctx.device)
    return TextFeatureCache(enc, ctx.cache_dir)


class DualStreamFamily:
    name = "dual_stream"
    sections = {"model": DualStreamModelCfg, "data": DualStreamDataCfg, "train": DualStreamTrainCfg,
                "embed": DualStreamEmbedCfg}
    scoring_rule = "mean_dot"  # mean over a query's sentences of q . g (published Part One rule)

    # -- model ---------------------------------------------------------------------------------------------------
    def build_model(self, cfg: Any, num_classes: int = 0, **kwargs: Any) -> DualStreamModel:
        return build_dual_stream(cfg, num_classes=num_classes, **kwargs)

    # -- data ----------------------------------------------------------------------------------------------------
    def prepare(self, cfg: Any, ctx: TrainContext, track_ids: Sequence[str]) -> dict[str, Any]:
        info: dict[str, Any] = {}
        tracks = {u: ctx.train_tracks[u] for u in track_ids}
        if cfg.data.cache_crops:
            crop, motion = _caches(cfg, ctx)
            info.update(build_caches([c for c in (crop, motion) if c is not None], ctx.data_root, tracks,
                                     workers=ctx.workers, log=ctx.log, progress=ctx.show_progress))
        if cfg.data.crop_store:
            info.update(crop_store(cfg, ctx).build(ctx.data_root, tracks, workers=ctx.workers, log=ctx.log,
                                                   progress=ctx.show_progress))
            if cfg.model.motion_stream:  # the motion maps still come one JPEG per track: cache them at input size
                motion = _caches(cfg, ctx)[1]
                assert motion is not None
                info.update(build_caches([motion], ctx.data_root, tracks, workers=ctx.workers, log=ctx.log,
                                         progress=ctx.show_progress))
        if cfg.data.cache_text:
            import time

            t0 = time.perf_counter()
            cache = _text_cache(cfg, ctx)
            sentences = [s for ss in track_sentences(ctx.prep_dir, ctx.train_tracks, list(track_ids), cfg.data.text)
                         for s in ss]
            before = len(cache)
            cache.get(sentences)
            info.update({"text_features_computed": len(cache) - before, "text_cache_s": time.perf_counter() - t0})
        return info

    def train_dataset(self, cfg: Any, ctx: TrainContext, track_ids: Sequence[str]) -> PartOneDataset:
        ids = list(track_ids)
        sentences = track_sentences(ctx.prep_dir, ctx.train_tracks, ids, cfg.data.text)
        k = cfg.data.sentences_sampled
        text_feats = None
        if cfg.data.cache_text:
            cache = _text_cache(cfg, ctx)
            picked = [[ss[min(j, len(ss) - 1)] for j in range(k)] for ss in sentences]
            flat = cache.get([s for ss in picked for s in ss])
            text_feats = flat.reshape(len(ids), k, -1).astype(np.float32)
        crop_cache = motion_cache = None
        if cfg.data.cache_crops:
            crop_cache, motion_cache = _caches(cfg, ctx)
            tracks = {u: ctx.train_tracks[u] for u in ids}
            stale = [c.folder for c in (crop_cache, motion_cache) if c is not None
                     and not all(c.is_complete(u, tracks[u]) for u in ids)]
            if stale:
                raise RuntimeError(f"crop/motion cache incomplete in {stale}: call prepare() first")
        store = None
        if cfg.data.crop_store:
            store = crop_store(cfg, ctx)
            missing = store.missing({u: ctx.train_tracks[u] for u in ids})
            if missing:
                raise RuntimeError(f"crop store {store.folder} lacks {len(missing)} track(s) (first: {missing[0]}) "
                                   f"or holds them for other boxes: call prepare() first")
            if cfg.model.motion_stream:
                motion_cache = _caches(cfg, ctx)[1]
        return PartOneDataset(ctx.data_root, ctx.prep_dir, ids, ctx.train_tracks, sentences,
                              size=cfg.model.image_size, crop_area=cfg.data.crop_area,
                              motion_variant=cfg.data.motion_variant if cfg.model.motion_stream else None,
                              sentences_sampled=k, text_feats=text_feats, crop_cache=crop_cache,
                              motion_cache=motion_cache, crop_store=store, train_aug=cfg.data.train_aug_cfg,
                              decode_on_device=cfg.data.crop_store_decode == "device",
                              motion_rot90=cfg.data.motion_rot90,
                              num_classes=len(ctx.train_tracks) if cfg.model.id_classes == "train_file" else None)

    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        return collate(samples)

    # -- optimisation --------------------------------------------------------------------------------------------
    def compute_loss(self, model: torch.nn.Module, batch: dict[str, Any], step: int
                     ) -> tuple[torch.Tensor, dict[str, float]]:
        inner: DualStreamModel = unwrap(model)  # type: ignore[assignment]
        dev = inner.logit_scale.device
        crops = batch_crops(batch, dev)
        motion = batch["motion"].to(dev, non_blocking=True) if "motion" in batch else None
        if "text" in batch:
            text = batch["text"].to(dev, non_blocking=True)
        else:
            # data.cache_text false (published): the frozen encoder on every training batch, in train mode (dropout
            # active) while the model trains, padded to the longest sentence of the (global) batch
            enc = inner.text_encoder.to(dev)
            pad_to = None
            if is_distributed():
                longest = torch.tensor([enc.token_length(batch["sentence"])], device=dev)
                torch.distributed.all_reduce(longest, op=torch.distributed.ReduceOp.MAX)
                pad_to = int(longest.item())
            train_mode = bool(inner.cfg.text_dropout and model.training)
            text = enc.encode_batch(batch["sentence"], train=train_mode, pad_to=pad_to).to(dev)
        out = model(crops, motion, text)
        scale = out["logit_scale"]
        names = ["car", "motion", "merged"] if inner.cfg.motion_stream else ["car", "merged"]
        total = torch.zeros((), device=dev)
        logs: dict[str, float] = {}
        for name, (v, t) in zip(names, out["pairs"]):
            loss = symmetric_infonce(gather_with_grad(v), gather_with_grad(t), scale)
            total = total + loss
            logs[f"loss_{name}"] = float(loss.detach())
        with torch.no_grad():  # the original's training accuracy: text-to-image top-1 in the batch, car pair
            car_v, car_t = out["pairs"][0]
            hits = (car_t @ car_v.T).argmax(dim=1) == torch.arange(car_t.shape[0], device=car_t.device)
            logs["train_top1"] = float(hits.float().mean())
        if out["id_logits"]:
            labels = batch["label"].to(dev, non_blocking=True)
            id_names = []
            if inner.cfg.car_idloss:
                id_names.append("id_car")
            if inner.cfg.mo_idloss:
                id_names.append("id_motion")
            if inner.cfg.share_idloss:
                id_names += ["id_share_text", "id_share_visual"]
            for name, logits in zip(id_names, out["id_logits"]):
                loss = id_loss(logits, labels)
                total = total + inner.cfg.id_loss_weight * loss
                logs[f"loss_{name}"] = float(loss.detach())
        logs["logit_scale"] = float(scale.detach())
        return total, logs

    def total_steps(self, cfg: Any, steps_per_epoch: int) -> int:
        t = cfg.train
        if t.max_steps is not None:
            return int(t.max_steps)
        if t.epochs is None:
            raise ValueError(f"{cfg.source}: set train.max_steps or train.epochs")
        return epochs_to_steps(t.epochs, steps_per_epoch)

    def optimizer_and_scheduler(self, model: torch.nn.Module, cfg: Any, steps_per_epoch: int
                                ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        t = cfg.train
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay, eps=t.adam_eps)
        warm = t.warmup_steps if t.warmup_steps is not None else (
            epochs_to_steps(t.warmup_epochs, steps_per_epoch) if t.warmup_epochs > 0 else 0)
        decay = t.lr_decay_every_steps if t.lr_decay_every_steps is not None else (
            epochs_to_steps(t.lr_decay_every_epochs, steps_per_epoch) if t.lr_decay_every_epochs else None)
        factor = warmup_step_decay(warm, t.warmup_lr / t.lr, decay, t.lr_decay, t.lr_decay_from == "warmup_end")
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)

    # -- the original's validation ------------------------------------------------------------------------------
    @torch.no_grad()
    def original_validation(self, model: torch.nn.Module, cfg: Any, ctx: TrainContext, val_ids: Sequence[str]
                            ) -> dict[str, float]:
        """The original's validation (P1.6): the whole val split as one batch, the car pair (crop stream and car
        text head), frame 0 and sentence index 2 of each track; top-1 / top-5 text-to-image accuracy."""
        from lib.families.images import load_crop

        m: DualStreamModel = unwrap(model)  # type: ignore[assignment]
        was_training = m.training
        m.eval()
        try:
            dev = m.logit_scale.device
            ids = list(val_ids)
            crops = np.stack([load_crop(ctx.data_root.frame_path(ctx.train_tracks[u]["frames"][0]),
                                        ctx.train_tracks[u]["boxes"][0], cfg.data.crop_area, cfg.model.image_size,
                                        what=f"track {u}, frames[0]") for u in ids])
            sents = track_sentences(ctx.prep_dir, ctx.train_tracks, ids, cfg.data.text)
            texts = [ss[min(2, len(ss) - 1)] for ss in sents]
            v = torch.nn.functional.normalize(m.crop_head(m.crop_embedding(torch.from_numpy(crops).to(dev))), dim=-1)
            enc = m.text_encoder.to(dev)
            feats = enc.encode_batch(texts).to(dev) if not enc.batch_independent else enc.encode(texts).to(dev)
            t = torch.nn.functional.normalize(m.text_car_head(m.text_embedding(feats)), dim=-1)
            order = (t @ v.T).argsort(dim=1, descending=True)
            target = torch.arange(len(ids), device=dev)[:, None]
            return {"top1": float((order[:, :1] == target).any(dim=1).float().mean()),
                    "top5": float((order[:, :5] == target).any(dim=1).float().mean())}
        finally:
            m.train(was_training)

    # -- embedding -----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def embed_gallery(self, model: torch.nn.Module, cfg: Any, ctx: TrainContext,
                      tracks: dict[str, dict[str, Any]], frames_per_track: int | None | str = CONFIG_DEFAULT
                      ) -> np.ndarray:
        """Track features ``[N, E]``: mean over the selected frames of the merged visual embedding.

        ``frames_per_track``: ``"config"`` = ``embed.frames_per_track``; None = every frame; k = k evenly spaced.
        """
        m: DualStreamModel = unwrap(model)  # type: ignore[assignment]
        was_training = m.training
        m.eval()
        try:
            k = cfg.embed.frames_per_track if frames_per_track == CONFIG_DEFAULT else frames_per_track
            dev = m.logit_scale.device
            size = cfg.model.image_size
            uuids = list(tracks)
            crop_cache, motion_cache = _caches(cfg, ctx)
            e = cfg.embed
            if (cfg.data.cache_crops and cfg.data.crop_cache_frames is None and not e.reduced_decode
                    and e.decode_device is None):
                # the gallery's crops into the same cache as the training ones (PREP/cache/crops/, shared by every
                # configuration of this crop area and size): decoded once, the same pixels (tested)
                whole = {u: t for u, t in tracks.items() if _is_dataset_track(ctx, u, t)}
                if whole:  # a frame subset of a track (lib.embed's train split) is not written: it reads its rows
                    build_caches([crop_cache], ctx.data_root, whole, workers=ctx.workers, log=ctx.log,
                                 progress=ctx.show_progress)
            rows = {u: _cache_rows(ctx, crop_cache, u, tracks[u], k) for u in uuids} if cfg.data.cache_crops else {}
            cached = bool(rows) and all(r is not None for r in rows.values())
            motion_car = None
            if cfg.model.motion_stream:
                motion_car = self._motion_heads(m, cfg, ctx, tracks, motion_cache, dev)

            def embed_fn(t: np.ndarray, crops: torch.Tensor) -> torch.Tensor:
                car = m.crop_head(m.crop_embedding(crops.to(dev, non_blocking=True)))
                mo = motion_car[torch.as_tensor(t, device=dev)] if motion_car is not None else None
                return torch.nn.functional.normalize(m.merge_heads(car, mo), dim=-1)

            bs = cfg.embed.batch_size
            # the cached crops are the decoded ones (same function), batched across tracks; reduced_decode and
            # decode_device apply to decoded frames only (the cache holds the full-resolution crops)
            if cached:
                agg = TrackAggregator(len(uuids), "mean")
                arrays = {u: crop_cache.load(u) for u in uuids}  # memory-mapped
                todo = [(ti, r) for ti, u in enumerate(uuids) for r in rows[u]]  # type: ignore[union-attr]
                for lo in range(0, len(todo), bs):
                    chunk = todo[lo:lo + bs]
                    t = np.array([ti for ti, _ in chunk])
                    crops = torch.from_numpy(np.stack([arrays[uuids[ti]][r] for ti, r in chunk]))
                    agg.add(t, embed_fn(t, crops).float().cpu().numpy())
                return agg.result()
            return embed_tracks(ctx.data_root, tracks, expand_crop_fn(cfg.data.crop_area, size), embed_fn,
                                aggregate="mean", frames_per_track=k, batch_size=bs, workers=ctx.workers,
                                reduced_decode=e.reduced_decode, decode_device=e.decode_device)
        finally:
            m.train(was_training)

    def _motion_heads(self, m: DualStreamModel, cfg: Any, ctx: TrainContext, tracks: dict[str, dict[str, Any]],
                      motion_cache: MotionCache | None, dev: torch.device) -> torch.Tensor:
        """Motion head output [N, E/2] of every track's map (once per track)."""
        from lib.families.images import load_motion

        uuids = list(tracks)
        outs = []
        bs = cfg.embed.batch_size
        use_cache = cfg.data.cache_crops and motion_cache is not None
        for lo in range(0, len(uuids), bs):
            maps = []
            for u in uuids[lo:lo + bs]:
                if use_cache and motion_cache.is_complete(u, tracks[u]):
                    maps.append(motion_cache.load(u))
                else:
                    maps.append(load_motion(ctx.prep_dir, cfg.data.motion_variant, u, cfg.model.image_size))
            x = torch.from_numpy(np.stack(maps)).to(dev)
            outs.append(m.motion_head(m.motion_embedding(x)))
        return torch.cat(outs)

    @torch.no_grad()
    def embed_queries(self, model: torch.nn.Module, cfg: Any, sentences_per_query: Sequence[Sequence[str]],
                      cache_dir: str | os.PathLike[str] | None = None) -> np.ndarray:
        m: DualStreamModel = unwrap(model)  # type: ignore[assignment]
        counts = {len(s) for s in sentences_per_query}
        if len(counts) > 1:
            raise ValueError(f"queries have different numbers of sentences {sorted(counts)}; [Q, S, D] needs one S")
        if not sentences_per_query:
            return np.zeros((0, 0, cfg.model.embed_dim), dtype=np.float32)
        s = counts.pop()
        flat = [x for q in sentences_per_query for x in q]
        was_training = m.training
        m.eval()
        try:
            if m.text_encoder.batch_independent:
                bs = cfg.embed.text_batch_size
                feats = torch.cat([m.encode_text(flat[i:i + bs]) for i in range(0, len(flat), bs)])
            elif cache_dir is not None:  # the same batches as below (same device), their features from the cache
                dev = m.logit_scale.device
                raw = GroupFeatureCache(m.frozen_encoder(), cache_dir).get(sentences_per_query)
                feats = torch.cat([m.encode_text_features(torch.from_numpy(r).to(dev)) for r in raw])
            else:  # published: each query's sentences tokenised together, padded to the longest of them
                feats = torch.cat([m.encode_text_together(list(q)) for q in sentences_per_query])
        finally:
            m.train(was_training)
        return feats.float().cpu().numpy().reshape(len(sentences_per_query), s, -1)

    def query_sentences(self, cfg: Any, ctx: TrainContext, track_ids: Sequence[str]) -> list[list[str]]:
        return track_sentences(ctx.prep_dir, ctx.train_tracks, list(track_ids), cfg.data.text)

    def similarity(self, queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
        return mean_sentence_similarity(queries, gallery)


FAMILY = register(DualStreamFamily())
