"""Validation during training: every val track ranked by its own query (all its sentences), by the official rule
(the ranking and metrics of :mod:`lib.metrics`, the same function that scores the submission)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from lib.metrics import expected_random_mrr, ranks_from_scores, summarize_ranks

if TYPE_CHECKING:
    from lib.config import RunConfig
    from lib.families.base import Family, TrainContext


def retrieval_metrics(scores: np.ndarray, targets: np.ndarray | None = None) -> dict[str, Any]:
    """MRR and Recall@1/5/10 of queries whose target is gallery item ``targets[q]`` (default: ``q``), ranked by the
    official rule (:func:`lib.metrics.ranks_from_scores`: ties keep gallery order, as in the submission); ``ranks``
    holds each query's 0-based rank."""
    if targets is None:
        targets = np.arange(scores.shape[0])
    ranks = ranks_from_scores(scores, np.asarray(targets))
    m = summarize_ranks(ranks)
    return {"mrr": m["mrr"], "r1": m["recall_1"], "r5": m["recall_5"], "r10": m["recall_10"], "rank_list": ranks}


def random_mrr(n: int) -> float:
    """Expected MRR of a uniformly random ranking of ``n`` items (:func:`lib.metrics.expected_random_mrr`)."""
    return expected_random_mrr(n) if n else 0.0


def validate(family: Family, model: torch.nn.Module, cfg: RunConfig, ctx: TrainContext,
             val_ids: Sequence[str]) -> dict[str, Any]:
    """Val MRR of ``model``: gallery = the val tracks (``train.val_frames_per_track`` frames each), queries = the
    val tracks' sentences; ranks every val track for every val query."""
    t0 = time.perf_counter()
    tracks = {uid: ctx.train_tracks[uid] for uid in val_ids}
    was_training = model.training
    model.eval()
    try:
        gallery = family.embed_gallery(model, cfg, ctx, tracks, frames_per_track=cfg.train.val_frames_per_track)
        queries = family.embed_queries(model, cfg, family.query_sentences(cfg, ctx, list(val_ids)),
                                         cache_dir=ctx.cache_dir)
    finally:
        model.train(was_training)
    scores = family.similarity(queries, gallery)
    out: dict[str, Any] = retrieval_metrics(scores)
    out["ranks"] = dict(zip(val_ids, out.pop("rank_list").tolist()))
    out["val_time_s"] = time.perf_counter() - t0
    return out

