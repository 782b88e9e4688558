"""Scores, the published weighted ensemble, weights fitted on validation, and the submission file.

Scoring rules (``../shared/reference/part_one.md``, ``part_two.md``):

- Part One (family ``dual_stream``, rule ``mean_dot``): a query's score for a track is the mean over the query's
  sentences of ``q_s . g``, with ``g`` the mean of the track's frame embeddings (not re-normalised).
- Part Two (family ``instance``, rule ``cosine``): the cosine of the L2-normalised query (normalised sum of its
  normalised sentences) and the L2-normalised gallery feature.
- Ensemble: ``score = sum_m w_m * score_m``; the published weights are each configuration's ``ensemble_weight``
  (4, 1, 1, 1, 1 for Part One in the published order, 1, 1, 1 for Part Two). ``fit_weights`` instead searches the
  weights that maximise MRR on the validation split (coordinate ascent over a log grid, from the published weights).

Embedding folders (``lib.embed``): ``embedding.json`` (name, family, rule, weight, whether the configuration is an
ablation), ``gallery.npz``/``queries.npz`` (test split), ``val_gallery.npz``/``val_queries.npz`` and
``train_gallery.npz`` (for the attribute classifiers of ``lib.rerank``). ``queries.npz`` holds ``ids``, ``feats``
[Q, S, D] and optionally ``n_sentences`` [Q] (queries with fewer sentences are zero-padded).

Command line::

    python -m lib.ensemble EMBED_DIR [EMBED_DIR ...] --out OUT [--data-root D --prep-dir P]
        [--weights published|fitted|equal] [--rerank] [--gt test-gt.json]

writes ``OUT/submission.json`` (the chosen variant), ``OUT/metrics.json`` (every variant when a ground truth is
available) and ``OUT/weights.json``; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lib.io import load_npz, read_json, write_json
from lib.metrics import evaluate_scores, rank_order, ranks_from_scores, summarize_ranks

RULES = ("mean_dot", "cosine")
FAMILY_RULES = {"dual_stream": "mean_dot", "instance": "cosine"}
MANIFEST = "embedding.json"
SPLIT_FILES = {"test": ("gallery.npz", "queries.npz"), "val": ("val_gallery.npz", "val_queries.npz"),
               "train": ("train_gallery.npz", None)}
WEIGHT_GRID = (0.0, 0.0625, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


# --- embeddings ------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Gallery:
    ids: list[str]
    feats: np.ndarray  # [N, D]


@dataclasses.dataclass
class Queries:
    ids: list[str]
    feats: np.ndarray  # [Q, S, D]
    n_sentences: np.ndarray  # [Q]

    @property
    def mask(self) -> np.ndarray:
        return np.arange(self.feats.shape[1])[None, :] < self.n_sentences[:, None]


@dataclasses.dataclass
class Member:
    """One configuration's embeddings of one split."""

    name: str
    rule: str
    weight: float
    gallery: Gallery
    queries: Queries | None
    ablation: bool = False
    source: str = ""


def load_gallery(path: str | os.PathLike[str]) -> Gallery:
    z = _load(path, ("ids", "feats"))
    feats = z["feats"].astype(np.float32, copy=False)
    if feats.ndim != 2 or feats.shape[0] != len(z["ids"]):
        raise ValueError(f"{path}: feats must be [N, D] with N = len(ids); got {feats.shape}, {len(z['ids'])} ids")
    return Gallery([str(i) for i in z["ids"]], feats)


def load_queries(path: str | os.PathLike[str]) -> Queries:
    z = _load(path, ("ids", "feats"))
    feats = z["feats"].astype(np.float32, copy=False)
    if feats.ndim == 2:
        feats = feats[:, None, :]
    if feats.ndim != 3 or feats.shape[0] != len(z["ids"]):
        raise ValueError(f"{path}: feats must be [Q, S, D] with Q = len(ids); got {feats.shape}")
    n = z.get("n_sentences")
    n = np.full(feats.shape[0], feats.shape[1], dtype=np.int64) if n is None else n.astype(np.int64)
    if n.shape != (feats.shape[0],) or n.min(initial=1) < 1 or n.max(initial=0) > feats.shape[1]:
        raise ValueError(f"{path}: n_sentences must be [Q] in 1..{feats.shape[1]}")
    return Queries([str(i) for i in z["ids"]], feats, n)


def _load(path: str | os.PathLike[str], keys: Sequence[str]) -> dict[str, np.ndarray]:
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: embedding file not found (run lib.embed first)")
    z = load_npz(path)
    missing = [k for k in keys if k not in z]
    if missing:
        raise ValueError(f"{path}: missing array(s) {missing}; has {sorted(z)}")
    return z


def read_manifest(embed_dir: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(embed_dir) / MANIFEST
    m = read_json(path)
    for key in ("name", "rule", "weight"):
        if key not in m:
            raise ValueError(f"{path}: missing key {key!r}")
    if m["rule"] not in RULES:
        raise ValueError(f"{path}: rule {m['rule']!r} is not one of {RULES}")
    return m


def write_manifest(embed_dir: str | os.PathLike[str], name: str, family: str, weight: float,
                   ablation: bool = False, **extra: Any) -> Path:
    if family not in FAMILY_RULES:
        raise ValueError(f"{name}: unknown family {family!r}; known: {sorted(FAMILY_RULES)}")
    return write_json(Path(embed_dir) / MANIFEST, {"name": name, "family": family, "rule": FAMILY_RULES[family],
                                                    "weight": float(weight), "ablation": bool(ablation), **extra})


def load_member(embed_dir: str | os.PathLike[str], split: str = "test") -> Member:
    """Load one configuration's embeddings of ``split`` (``test``, ``val`` or ``train``, gallery only)."""
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be one of {sorted(SPLIT_FILES)}, got {split!r}")
    d = Path(embed_dir)
    m = read_manifest(d)
    gfile, qfile = SPLIT_FILES[split]
    return Member(name=m["name"], rule=m["rule"], weight=float(m["weight"]), gallery=load_gallery(d / gfile),
                  queries=load_queries(d / qfile) if qfile else None, ablation=bool(m.get("ablation", False)),
                  source=str(d))


# --- scores ----------------------------------------------------------------------------------------------------
def _l2n(x: np.ndarray, axis: int = -1) -> np.ndarray:
    n = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(n, 1e-12)


def query_vectors(queries: Queries, rule: str) -> np.ndarray:
    """[Q, D] vector whose dot with a gallery feature gives the rule's score."""
    masked = queries.feats * queries.mask[:, :, None]
    if rule == "mean_dot":  # mean_s(q_s . g) == (mean_s q_s) . g
        return masked.sum(1) / queries.n_sentences[:, None].astype(np.float32)
    if rule == "cosine":
        return _l2n(masked.sum(1))
    raise ValueError(f"unknown scoring rule {rule!r}; known: {RULES}")


def gallery_vectors(gallery: Gallery, rule: str) -> np.ndarray:
    if rule == "mean_dot":
        return gallery.feats
    if rule == "cosine":
        return _l2n(gallery.feats)
    raise ValueError(f"unknown scoring rule {rule!r}; known: {RULES}")


def matmul_t(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b.T`` in float32 through torch (its CPU GEMM is ~3x faster than numpy's here)."""
    import torch

    ta = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    tb = torch.from_numpy(np.ascontiguousarray(b, dtype=np.float32))
    return (ta @ tb.T).numpy()


def score_matrix(member: Member) -> np.ndarray:
    """[Q, N] scores of one configuration under its published rule."""
    if member.queries is None:
        raise ValueError(f"{member.name}: no queries loaded for this split")
    q = query_vectors(member.queries, member.rule)
    g = gallery_vectors(member.gallery, member.rule)
    return matmul_t(q, g)


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


def evaluate(scores: np.ndarray, split: SplitScores) -> tuple[dict[str, float], np.ndarray]:
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


def main(argv: list[str] | None = None) -> int:
    from lib.evaluation import run_ensemble

    ap = argparse.ArgumentParser(prog="python -m lib.ensemble", description=__doc__.split("\n\n")[0])
    ap.add_argument("embed_dirs", nargs="+", help="embedding folders written by lib.embed (one per configuration)")
    ap.add_argument("--out", required=True, help="output folder (submission.json, metrics.json, weights.json)")
    ap.add_argument("--data-root", help="dataset root (test queries for the re-rank, test-gt.json when present)")
    ap.add_argument("--prep-dir", help="prep folder (split.json for the re-rank classifiers)")
    ap.add_argument("--weights", choices=("published", "fitted", "equal"), default="published",
                    help="weights of the submitted variant (fitted: on the val split)")
    ap.add_argument("--rerank", action="store_true", help="apply the attribute re-rank to the submitted variant")
    ap.add_argument("--gt", help="ground truth {query: track} (default: DATA_ROOT/test-gt.json when present)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    res = run_ensemble(args.embed_dirs, out_dir=args.out, data_root=args.data_root, prep_dir=args.prep_dir,
                       submit_weights=args.weights, submit_rerank=args.rerank, gt_path=args.gt, seed=args.seed)
    summary = {"submission": str(res.submission_path), "variant": res.submitted_variant,
               "seconds": round(time.perf_counter() - t0, 2)}
    if res.submitted_variant in res.test_metrics:
        summary.update(res.test_metrics[res.submitted_variant])
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
