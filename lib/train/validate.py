"""Validation during training: every val track ranked by its own query (all its sentences), official rule."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from lib.config import RunConfig
    from lib.family import Family, TrainContext


def ranks_of_targets(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based rank of ``targets[q]`` in row ``q`` of ``scores`` sorted descending (ties count against us)."""
    scores = np.asarray(scores, dtype=np.float64)
    own = scores[np.arange(len(targets)), targets]
    return (scores > own[:, None]).sum(axis=1) + ((scores == own[:, None]).sum(axis=1) - 1)


def retrieval_metrics(scores: np.ndarray, targets: np.ndarray | None = None) -> dict[str, float]:
    """MRR and Recall@1/5/10 of queries whose target is gallery item ``targets[q]`` (default: ``q``)."""
    if targets is None:
        targets = np.arange(scores.shape[0])
    ranks = ranks_of_targets(scores, np.asarray(targets))
    return {"mrr": float(np.mean(1.0 / (ranks + 1))), "r1": float(np.mean(ranks < 1)),
            "r5": float(np.mean(ranks < 5)), "r10": float(np.mean(ranks < 10))}


def random_mrr(n: int) -> float:
    """Expected MRR of a uniformly random ranking of ``n`` items: ``H_n / n``."""
    return float(np.sum(1.0 / np.arange(1, n + 1)) / n) if n else 0.0


def evaluate(family: Family, model: torch.nn.Module, cfg: RunConfig, ctx: TrainContext,
             val_ids: Sequence[str]) -> dict[str, Any]:
    """Val MRR of ``model``: gallery = the val tracks (``train.val_frames_per_track`` frames each), queries = the
    val tracks' sentences; ranks every val track for every val query."""
    t0 = time.perf_counter()
    tracks = {uid: ctx.train_tracks[uid] for uid in val_ids}
    was_training = model.training
    model.eval()
    try:
        gallery = family.embed_gallery(model, cfg, ctx, tracks, frames_per_track=cfg.train.val_frames_per_track)
        queries = family.embed_queries(model, cfg, family.query_sentences(cfg, ctx, list(val_ids)))
    finally:
        model.train(was_training)
    scores = family.similarity(queries, gallery)
    out: dict[str, Any] = retrieval_metrics(scores)
    out["ranks"] = dict(zip(val_ids, ranks_of_targets(scores, np.arange(len(val_ids))).tolist()))
    out["val_time_s"] = time.perf_counter() - t0
    return out

