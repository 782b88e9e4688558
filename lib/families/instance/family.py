"""The ``instance`` family (Part Two) behind the generic trainer and embedder (protocol: :mod:`lib.families.base`).

- data: the "clear" instance ids over the train split, ``data.multi`` x #tracks samples per epoch, ``nseg`` padded
  crops + one sentence per sample (:mod:`lib.families.instance.data`);
- loss: instance cross-entropy of both modalities through the shared classifier + ``dd`` (or the sample-level
  ``clip`` term), gathered over DDP ranks so it is the global-batch loss (:mod:`lib.families.instance.loss`); the
  published
  warm-up is a factor on the loss by step (:meth:`InstanceFamily.loss_factor`, applied by the trainer);
- optimiser: SGD, Nesterov momentum 0.9, weight decay 5e-4, backbone + GeM + logit scale and the text encoder at
  0.1 x lr; x0.1 at ``round(0.8 E)`` and ``round(0.95 E)`` epochs, one epoch early as published
  (``train.lr_drop_one_epoch_early``);
- gallery: ``embed.frames`` evenly spaced frames (``floor(linspace(0, n, k, endpoint=False))``, every frame when
  ``n <= k``), each embedding L2-normalised, summed, normalised; with ``nseg > 1`` one GeM-fused embedding of
  ``nseg`` such frames. Crops use the training pad (``embed.test_pad: as_trained``, as the authors ran the test
  script; ``zero`` is the defect-compatible pad 0 of a run without ``--pad``);
- queries: each query's sentences are tokenised together (as published: with the published all-token pooling
  the padding makes a sentence's embedding depend on its batch-mates), each embedding L2-normalised; the score is
  the cosine between the normalised sum of a query's sentences and the gallery feature (:meth:`similarity`).
"""

from __future__ import annotations

import bisect
import functools
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from lib.distributed import gather_with_grad, is_distributed, unwrap
from lib.families.base import TrainContext, register
from lib.families.crop_store import CropStore
from lib.families.gallery import embed_tracks, iter_crop_batches
from lib.families.instance import data as D
from lib.families.instance.config import InstanceDataCfg, InstanceEmbedCfg, InstanceModelCfg, InstanceTrainCfg
from lib.families.instance.loss import instance_loss, warmup_factor
from lib.families.instance.model import InstanceModel, build_instance_model

if TYPE_CHECKING:
    from lib.config import RunConfig


def lr_factor(step: int, steps_per_epoch: int, epochs: float, milestones: Sequence[float], gamma: float,
              one_epoch_early: bool) -> float:
    """Epoch-based MultiStepLR in steps: ``gamma ** #(milestones <= epoch (+1 when one_epoch_early))``.

    Milestones are ``round(f * epochs)`` for each fraction ``f``. The original calls ``scheduler.step()`` at the
    start of every epoch, so epoch ``e`` trains with the rate scheduled for ``e + 1``.
    """
    ms = sorted(int(round(f * epochs)) for f in milestones)
    epoch = step // max(1, steps_per_epoch)
    return gamma ** bisect.bisect_right(ms, epoch + (1 if one_epoch_early else 0))


def crop_store(cfg: RunConfig, ctx: TrainContext) -> CropStore:
    """The configuration's crop store: padded box (``data.pad``) resized bicubic to ``model.crop_size``."""
    p, s = cfg.data.pad, cfg.model.crop_size
    return CropStore(ctx.cache_dir, f"pad_p{p:.4f}_s{s}", D.gallery_crop_fn(p, s), cfg.data.crop_store_quality)


class InstanceFamily:
    name = "instance"
    sections = {"model": InstanceModelCfg, "data": InstanceDataCfg, "train": InstanceTrainCfg,
                "embed": InstanceEmbedCfg}
    scoring_rule = "cosine"  # cosine of the mean query feature and the gallery feature (published Part Two rule)

    # --- model and data ----------------------------------------------------------------------------------------
    def build_model(self, cfg: RunConfig, num_classes: int | None = None) -> InstanceModel:
        return build_instance_model(cfg, num_classes=num_classes)

    def prepare(self, cfg: RunConfig, ctx: TrainContext, track_ids: Sequence[str]) -> dict[str, Any]:
        # data.crop_store: every padded crop cut once into the crop store; otherwise frames are decoded per sample
        if not cfg.data.crop_store:
            return {}
        return crop_store(cfg, ctx).build(ctx.data_root, {u: ctx.train_tracks[u] for u in track_ids},
                                          workers=ctx.workers, log=ctx.log, progress=ctx.show_progress)

    def clear_tracks(self, cfg: RunConfig, ctx: TrainContext, track_ids: Sequence[str]) -> D.ClearTracks:
        return D.clear_instance_ids(ctx.train_tracks, list(track_ids), cfg.data.duplicate_unique_sentences,
                                    cfg.data.reindex_ids)

    def train_dataset(self, cfg: RunConfig, ctx: TrainContext, track_ids: Sequence[str]) -> D.InstanceTrainDataset:
        clear = self.clear_tracks(cfg, ctx, track_ids)
        d, m = cfg.data, cfg.model
        store = None
        if d.crop_store:
            store = crop_store(cfg, ctx)
            missing = store.missing({u: ctx.train_tracks[u] for u in track_ids})
            if missing:
                raise RuntimeError(f"crop store {store.folder} lacks {len(missing)} track(s) (first: {missing[0]}) "
                                   f"or holds them for other boxes: call prepare() first")
        opts = D.InstanceDataOptions(crop_size=m.crop_size, nseg=m.nseg, pad=d.pad, multi=d.multi,
                                     pad_pixels=d.pad_pixels, erasing_p=d.erasing_p, text_wrap=d.text_wrap,
                                     normalise_text=d.normalise_text, train_aug=d.train_aug_cfg, crop_store=store)
        ctx.log(f"instance ids: {len(track_ids)} train tracks, {clear.merged} merged by the clear rule, "
                f"{clear.num_classes} classifier outputs")
        return D.InstanceTrainDataset(ctx.data_root.root, ctx.train_tracks, clear, opts)

    def collate(self, samples: list[Any]) -> Any:
        return D.collate(samples)

    # --- optimisation ------------------------------------------------------------------------------------------
    def compute_loss(self, model: torch.nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        inner: InstanceModel = unwrap(model)  # type: ignore[assignment]
        dev = inner.device
        tok = inner.tokenize(batch["texts"])
        if is_distributed():  # pad like the original's one tokenisation of the whole batch (padding is pooled)
            longest = torch.tensor([tok["input_ids"].shape[1]], device=dev)
            torch.distributed.all_reduce(longest, op=torch.distributed.ReduceOp.MAX)
            tok = inner.tokenize(batch["texts"], pad_to=int(longest.item()))
        images = batch["images"].to(dev, dtype=inner.logit_scale.dtype, non_blocking=True)
        out = model(images, tok["input_ids"], tok["attention_mask"])
        labels = batch["labels"].to(dev)
        # contrastive term over the global batch (identity in one process); id terms on this rank's shard (DDP
        # averages their gradients, which is the global mean)
        v, t = gather_with_grad(out["visual"]), gather_with_grad(out["text"])
        ids_all = _gather_plain(labels)
        terms = instance_loss(v, t, out["visual_logits"], out["text_logits"], labels, out["logit_scale"],
                              kind=inner.loss_kind, same_id=inner.same_id, ids_contrastive=ids_all)
        logs = {"contrastive": float(terms["contrastive"]), "id": float(terms["id"]),
                "logit_scale": float(out["logit_scale"].detach())}
        return terms["loss"], logs

    def loss_factor(self, cfg: RunConfig, step: int, steps_per_epoch: int, n_samples: int) -> float:
        """The published loss warm-up (0.1 -> 1 over ``warm_epochs * round(N / B)`` steps)."""
        t = cfg.train
        return warmup_factor(step, steps_per_epoch, t.warm_epochs, n_samples, t.batch_size)

    def optimizer_and_scheduler(self, model: torch.nn.Module, cfg: RunConfig, steps_per_epoch: int
                                ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        t = cfg.train
        inner: InstanceModel = unwrap(model)  # type: ignore[assignment]
        groups = inner.param_groups(t.lr, t.backbone_lr_mult, t.text_lr_mult)
        opt = torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum, nesterov=t.nesterov,
                              weight_decay=t.weight_decay)
        epochs = self._epochs(cfg, steps_per_epoch)

        def factor(step: int) -> float:
            return lr_factor(step, steps_per_epoch, epochs, t.milestones, t.gamma, t.lr_drop_one_epoch_early)

        return opt, torch.optim.lr_scheduler.LambdaLR(opt, [factor] * len(groups))

    def _epochs(self, cfg: RunConfig, steps_per_epoch: int) -> float:
        t = cfg.train
        if t.epochs is not None:
            return float(t.epochs)
        if t.max_steps is not None:
            return t.max_steps / max(1, steps_per_epoch)
        raise ValueError(f"{cfg.source}: train: set epochs (or max_steps)")

    def total_steps(self, cfg: RunConfig, steps_per_epoch: int) -> int:
        t = cfg.train
        if t.max_steps is not None:
            return int(t.max_steps)
        return max(1, int(round(self._epochs(cfg, steps_per_epoch) * steps_per_epoch)))

    # --- embedding ---------------------------------------------------------------------------------------------
    def gallery_frame_indices(self, cfg: RunConfig, n_frames: int, frames_per_track: int | None = None
                              ) -> list[int]:
        if cfg.model.nseg > 1:
            return D.eval_frame_indices(n_frames, cfg.model.nseg, all_if_short=False)
        return D.eval_frame_indices(n_frames, frames_per_track or cfg.embed.frames)

    def test_pad(self, cfg: RunConfig) -> float:
        return 0.0 if cfg.embed.test_pad == "zero" else cfg.data.pad

    @torch.no_grad()
    def embed_gallery(self, model: torch.nn.Module, cfg: RunConfig, ctx: TrainContext,
                      tracks: dict[str, dict[str, Any]], frames_per_track: int | None = None) -> np.ndarray:
        """``[N, 512]``, L2-normalised, in the order of ``tracks`` (crops via ``lib.families.gallery``: one decode
        per frame)."""
        inner: InstanceModel = unwrap(model)  # type: ignore[assignment]
        crop_fn = D.gallery_crop_fn(self.test_pad(cfg), cfg.model.crop_size)
        select = functools.partial(self.gallery_frame_indices, cfg, frames_per_track=frames_per_track)
        was_training = inner.training
        inner.eval()
        try:
            if inner.nseg == 1:  # each frame's embedding normalised, summed per track, normalised
                def embed_fn(_t: np.ndarray, crops: torch.Tensor) -> torch.Tensor:
                    return inner.encode_images(D.normalise_batch(crops.to(inner.device)))[0]

                return embed_tracks(ctx.data_root, tracks, crop_fn, embed_fn, aggregate="normalized_sum",
                                    batch_size=cfg.embed.batch_size, workers=ctx.workers, progress=ctx.show_progress,
                                    select=select, reduced_decode=cfg.embed.reduced_decode)
            return self._embed_segments(inner, cfg, ctx, tracks, crop_fn, select)
        finally:
            inner.train(was_training)

    def _embed_segments(self, inner: InstanceModel, cfg: RunConfig, ctx: TrainContext,
                        tracks: dict[str, dict[str, Any]], crop_fn: Any, select: Any) -> np.ndarray:
        """nseg > 1: the nseg crops of a track (in frame order) -> one GeM-fused, L2-normalised embedding."""
        nseg = inner.nseg
        pending: dict[int, list[tuple[int, torch.Tensor]]] = {}
        ready: list[tuple[int, torch.Tensor]] = []
        out = np.zeros((len(tracks), inner.mcfg.embed_dim), dtype=np.float32)
        done = np.zeros(len(tracks), dtype=bool)
        per_batch = max(1, cfg.embed.batch_size // nseg)

        def flush() -> None:
            idx = [t for t, _ in ready]
            images = torch.stack([x for _, x in ready]).to(inner.device)  # (B, nseg, H, W, 3) uint8
            b, _, h, w, c = images.shape
            batch = D.normalise_batch(images.view(b * nseg, h, w, c)).view(b, nseg, c, h, w)
            out[idx] = F.normalize(inner.encode_images(batch)[0], dim=1).float().cpu().numpy()
            done[idx] = True
            ready.clear()

        for t_idx, pos, crops in iter_crop_batches(ctx.data_root, tracks, crop_fn, None, cfg.embed.batch_size,
                                                   ctx.workers, progress=ctx.show_progress, select=select,
                                                   reduced_decode=cfg.embed.reduced_decode):
            for t, p, crop in zip(t_idx.tolist(), pos.tolist(), crops):
                got = pending.setdefault(t, [])
                got.append((p, crop))
                if len(got) == nseg:
                    ready.append((t, torch.stack([x for _, x in sorted(got, key=lambda e: e[0])])))
                    del pending[t]
                    if len(ready) >= per_batch:
                        flush()
        if ready:
            flush()
        if pending or not done.all():
            missing = [u for u, d in zip(tracks, done) if not d]
            raise RuntimeError(f"gallery: {len(missing)} track(s) without their {nseg} crops, e.g. {missing[:3]}")
        return out

    @torch.no_grad()
    def embed_queries(self, model: torch.nn.Module, cfg: RunConfig, sentences_per_query: Sequence[Sequence[str]],
                      cache_dir: str | os.PathLike[str] | None = None) -> np.ndarray:
        """``[Q, S, D]``: each sentence's L2-normalised embedding; a query with fewer than ``S`` sentences gets zero
        rows (they add nothing to the query's sum). ``cache_dir`` is not used: the text encoder trains with the
        model, so there are no frozen features to share.

        As published, a query's sentences are tokenised together (padded to the longest of them), which matters
        under the published all-token pooling. To run many queries per forward pass, queries whose padded length
        is the same are stacked: every sequence then has exactly the padding it has when its query is embedded
        alone.
        """
        inner: InstanceModel = unwrap(model)  # type: ignore[assignment]
        s_max = max((len(s) for s in sentences_per_query), default=0)
        out = np.zeros((len(sentences_per_query), s_max, inner.mcfg.embed_dim), dtype=np.float32)
        groups: dict[int, list[tuple[int, dict[str, torch.Tensor]]]] = {}
        for q, sentences in enumerate(sentences_per_query):
            if sentences:
                enc = inner.tokenizer(inner.prepare_texts(list(sentences)), padding="longest", return_tensors="pt")
                groups.setdefault(int(enc["input_ids"].shape[1]), []).append((q, enc))
        chunk = max(1, cfg.embed.batch_size)
        was_training = inner.training
        inner.eval()
        try:
            for items in groups.values():
                rows = [(q, i) for q, enc in items for i in range(enc["input_ids"].shape[0])]
                ids = torch.cat([enc["input_ids"] for _, enc in items])
                mask = torch.cat([enc["attention_mask"] for _, enc in items])
                for lo in range(0, len(rows), chunk):
                    emb, _ = inner.encode_tokens(ids[lo:lo + chunk].to(inner.device),
                                                 mask[lo:lo + chunk].to(inner.device))
                    emb = F.normalize(emb, dim=1).float().cpu().numpy()
                    for (q, i), e in zip(rows[lo:lo + chunk], emb):
                        out[q, i] = e
        finally:
            inner.train(was_training)
        return out

    def query_sentences(self, cfg: RunConfig, ctx: TrainContext, track_ids: Sequence[str]) -> list[list[str]]:
        return [list(ctx.train_tracks[u]["nl"]) for u in track_ids]

    def similarity(self, queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
        """Cosine of the normalised sum of each query's sentence embeddings with the normalised gallery feature."""
        q = np.asarray(queries, dtype=np.float32)
        g = np.asarray(gallery, dtype=np.float32)
        if q.ndim != 3 or g.ndim != 2 or q.shape[-1] != g.shape[-1]:
            raise ValueError(f"expected queries [Q, S, D] and gallery [N, D], got {q.shape} and {g.shape}")
        qs = q.sum(axis=1)
        qs /= np.maximum(np.linalg.norm(qs, axis=1, keepdims=True), 1e-12)
        gn = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
        return qs @ gn.T


def _gather_plain(x: torch.Tensor) -> torch.Tensor:
    """All ranks' ``x`` concatenated (no gradient); identity in one process."""
    if not is_distributed():
        return x
    parts = [torch.empty_like(x) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather(parts, x.contiguous())
    return torch.cat(parts)


FAMILY = register(InstanceFamily())
