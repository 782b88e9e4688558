"""Scores, the published weighted ensemble, weights fitted on validation, and the submission file.

Scoring rules (``docs/reference.md``, P1.8 and P2.5):

- Part One (family ``dual_stream``, rule ``mean_dot``): a query's score for a track is the mean over the query's
  sentences of ``q_s . g``, with ``g`` the mean of the track's frame embeddings (not re-normalised).
- Part Two (family ``instance``, rule ``cosine``): the cosine of the L2-normalised query (normalised sum of its
  normalised sentences) and the L2-normalised gallery feature.
- Ensemble: ``score = sum_m w_m * score_m``; the published weights are each configuration's ``ensemble_weight``
  (4, 1, 1, 1, 1 for Part One in the published order, 1, 1, 1 for Part Two). ``fit_weights`` instead searches the
  weights that maximise MRR on the validation split (coordinate ascent over a log grid, from the published weights).

Embedding folders (``lib.embed``): ``embedding.json`` (name, family, rule, weight, whether the configuration is an
ablation), ``gallery.npz``/``queries.npz`` (test split), ``val_gallery.npz``/``val_queries.npz`` and
``train_gallery.npz`` (for the attribute classifiers of ``lib.ensemble.rerank``). ``queries.npz`` holds ``ids``,
``feats`` [Q, S, D] and optionally ``n_sentences`` [Q] (queries with fewer sentences are zero-padded).

The command line (``python -m lib.ensemble``) is in :mod:`lib.ensemble.run`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from lib.embeddings import (
    MANIFEST,
    Member,
    gallery_vectors,
    matmul_t,
    query_vectors,
    score_matrix,
)
from lib.io import write_json
from lib.metrics import evaluate_scores, rank_order, ranks_from_scores, summarize_ranks

WEIGHT_GRID = (0.0, 0.0625, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


def aligned_scores(members: Sequence[Member]) -> tuple[list[str], list[str], np.ndarray]:
    """Score every member and align rows/columns to the first member's ids: (query ids, gallery ids, [M, Q, N])."""
    if not members:
        raise ValueError("no configurations to ensemble")
    ref = members[0]
    assert ref.queries is not None
    qids, gids = ref.queries.ids, ref.gallery.ids
    out = np.empty((len(members), len(qids), len(gids)), dtype=np.float32)
    for i, m in enumerate(members):
        s = score_matrix(m)
        assert m.queries is not None
        out[i] = s[np.ix_(_positions(m.queries.ids, qids, m, "query"), _positions(m.gallery.ids, gids, m, "track"))]
    return qids, gids, out


def _positions(have: Sequence[str], want: Sequence[str], m: Member, what: str) -> np.ndarray:
    pos = {x: i for i, x in enumerate(have)}
    missing = [w for w in want if w not in pos]
    if missing or len(have) != len(want):
        extra = sorted(set(have) - set(want))
        raise ValueError(f"{m.source or m.name}: {what} ids differ from the first configuration's "
                         f"(missing {missing[:3]}{'...' if len(missing) > 3 else ''}, extra {extra[:3]})")
    return np.fromiter((pos[w] for w in want), dtype=np.int64, count=len(want))


@dataclasses.dataclass
class FusedIndex:
    """Every member's rule vectors side by side: ``score = (Q * w) @ G.T`` is the weighted ensemble in one GEMM."""

    query_ids: list[str]
    gallery_ids: list[str]
    queries: list[np.ndarray]  # per member [Q, D_m]
    gallery: np.ndarray  # [N, sum D_m]

    @classmethod
    def build(cls, members: Sequence[Member]) -> FusedIndex:
        if not members:
            raise ValueError("no configurations to ensemble")
        ref = members[0]
        assert ref.queries is not None
        qids, gids = ref.queries.ids, ref.gallery.ids
        qs, gs = [], []
        for m in members:
            if m.queries is None:
                raise ValueError(f"{m.name}: no queries loaded for this split")
            qs.append(query_vectors(m.queries, m.rule)[_positions(m.queries.ids, qids, m, "query")])
            gs.append(gallery_vectors(m.gallery, m.rule)[_positions(m.gallery.ids, gids, m, "track")])
        return cls(list(qids), list(gids), qs, np.ascontiguousarray(np.concatenate(gs, axis=1), dtype=np.float32))

    def scores(self, weights: Sequence[float]) -> np.ndarray:
        """[Q, N] weighted ensemble scores (equal to ``combine(aligned_scores(...)[2], weights)``)."""
        if len(weights) != len(self.queries):
            raise ValueError(f"{len(self.queries)} members but {len(weights)} weights")
        q = np.concatenate([np.float32(w) * qm for w, qm in zip(weights, self.queries)], axis=1)
        return matmul_t(q, self.gallery)


def combine(scores: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """Weighted sum over members: [M, Q, N] x [M] -> [Q, N]."""
    w = np.asarray(weights, dtype=np.float32)
    if w.shape != (scores.shape[0],):
        raise ValueError(f"{scores.shape[0]} members but {w.shape} weights")
    return np.tensordot(w, scores, axes=1)


def fit_weights(scores: np.ndarray, target_index: np.ndarray, init: Sequence[float],
                grid: Sequence[float] = WEIGHT_GRID, rounds: int = 4) -> tuple[list[float], float]:
    """Maximise validation MRR over the weights by coordinate ascent on ``grid``, starting at ``init``.

    Deterministic. A move is taken only if it raises the MRR by more than 1e-9, so ties keep the published value.
    Returns (weights, best MRR).
    """
    w = [float(x) for x in init]

    def mrr(ws: Sequence[float]) -> float:
        if not any(ws):
            return -1.0
        return summarize_ranks(ranks_from_scores(combine(scores, ws), target_index))["mrr"]

    best = mrr(w)
    for _ in range(rounds):
        improved = False
        for m in range(len(w)):
            for cand in grid:
                if cand == w[m]:
                    continue
                trial = w[:m] + [float(cand)] + w[m + 1:]
                v = mrr(trial)
                if v > best + 1e-9:
                    best, w, improved = v, trial, True
        if not improved:
            break
    return w, best


# --- submission ------------------------------------------------------------------------------------------------
def make_submission(scores: np.ndarray, query_ids: Sequence[str], gallery_ids: Sequence[str]
                    ) -> dict[str, list[str]]:
    """``{query_uuid: [every track uuid, best first]}``."""
    order = rank_order(scores)
    g = np.asarray(gallery_ids, dtype=object)
    return {q: g[order[i]].tolist() for i, q in enumerate(query_ids)}


def write_submission(path: str | os.PathLike[str], submission: Mapping[str, Sequence[str]]) -> Path:
    return write_json(path, dict(submission), indent=None)


# --- the whole step --------------------------------------------------------------------------------------------
@dataclasses.dataclass
class SplitScores:
    """Every member's scores on one split, aligned, plus the ground truth index of each query (when known)."""

    query_ids: list[str]
    gallery_ids: list[str]
    names: list[str]
    scores: np.ndarray  # [M, Q, N]
    target_index: np.ndarray | None  # [Q]

    def member(self, name: str) -> np.ndarray:
        return self.scores[self.names.index(name)]


def split_scores(members: Sequence[Member], gt: Mapping[str, str] | None) -> SplitScores:
    qids, gids, s = aligned_scores(members)
    tgt = None
    if gt is not None:
        pos = {g: i for i, g in enumerate(gids)}
        missing = [q for q in qids if q not in gt or gt[q] not in pos]
        if missing:
            raise KeyError(f"{len(missing)} queries have no ground-truth track in the gallery, e.g. {missing[:3]}")
        tgt = np.array([pos[gt[q]] for q in qids], dtype=np.int64)
    return SplitScores(qids, gids, [m.name for m in members], s, tgt)


def val_ground_truth(query_ids: Sequence[str]) -> dict[str, str]:
    """On the val split each query is a val track's own description: its target is itself."""
    return {q: q for q in query_ids}


def evaluate_split(scores: np.ndarray, split: SplitScores) -> tuple[dict[str, float], np.ndarray]:
    if split.target_index is None:
        raise ValueError("no ground truth for this split")
    gt = {q: split.gallery_ids[t] for q, t in zip(split.query_ids, split.target_index)}
    return evaluate_scores(scores, split.query_ids, split.gallery_ids, gt)


def ensemble_dirs(runs_dir: str | os.PathLike[str], configs: Sequence[str]) -> list[Path]:
    """``runs_dir/embed/<config>`` for every configuration, checked to exist."""
    dirs = [Path(runs_dir) / "embed" / c for c in configs]
    missing = [str(d) for d in dirs if not (d / MANIFEST).exists()]
    if missing:
        raise FileNotFoundError(f"embeddings not found (run 05_embed / lib.embed): {missing}")
    return dirs
