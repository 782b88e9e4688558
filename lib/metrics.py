"""The official CityFlow-NL retrieval metric, on submissions and on score matrices.

Official rule (AI City Challenge 2021, track 5): for every ground-truth query, ``rank`` is the 0-based position of
its target track in the submitted list, or 100 when the target is absent from the list. ``MRR = mean(1 / (rank +
1))``, ``Recall@k = share of queries with rank < k`` (the challenge reports k = 5 and 10; we add 1 and 25).

Command line::

    python -m lib.metrics GT.json RESULTS.json [--per-query OUT.json]

prints one JSON object (``mrr``, ``recall_1``, ``recall_5``, ``recall_10``, ``recall_25``, ``n_queries``) on its
last line. ``GT.json`` is ``{query_uuid: track_uuid}`` (a one-element list is accepted too); ``RESULTS.json`` is
``{query_uuid: [track uuids, best first]}`` and may be truncated. A ground-truth query missing from the results is
an error that names it: the official script fails on it too, and silently scoring it would change the number.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lib.io import read_json, write_json

ABSENT_RANK = 100
RECALL_KS = (1, 5, 10, 25)


def _gt_target(query: str, value: Any, source: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        return value[0]
    raise ValueError(f"{source}: query {query!r}: expected a track uuid (string), got {value!r}")


def load_gt(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read ``{query_uuid: track_uuid}``."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object {{query_uuid: track_uuid}}")
    return {q: _gt_target(q, v, str(path)) for q, v in data.items()}


def load_results(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Read a submission ``{query_uuid: [track uuids, best first]}``."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object {{query_uuid: [track uuids]}}")
    for q, v in data.items():
        if not isinstance(v, list) or not all(isinstance(t, str) for t in v):
            raise ValueError(f"{path}: query {q!r}: expected a list of track uuids")
    return data


def official_rank(target: str, ranked: Sequence[str]) -> int:
    """0-based position of ``target`` in ``ranked``; 100 when absent (the official rule)."""
    try:
        return list(ranked).index(target)
    except ValueError:
        return ABSENT_RANK


def submission_ranks(gt: Mapping[str, str], results: Mapping[str, Sequence[str]], source: str = "results"
                     ) -> dict[str, int]:
    """Official rank of every ground-truth query's target in a submission."""
    missing = [q for q in gt if q not in results]
    if missing:
        shown = ", ".join(missing[:5]) + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else "")
        raise KeyError(f"{source}: {len(missing)} ground-truth quer{'y is' if len(missing) == 1 else 'ies are'} "
                       f"missing from the submission: {shown}")
    return {q: official_rank(t, results[q]) for q, t in gt.items()}


def summarize_ranks(ranks: Sequence[int] | np.ndarray, ks: Sequence[int] = RECALL_KS) -> dict[str, float]:
    """MRR and Recall@k of 0-based ranks (absent targets carry rank 100)."""
    r = np.asarray(ranks, dtype=np.float64)
    if r.size == 0:
        raise ValueError("no queries to evaluate")
    out: dict[str, float] = {"mrr": float(np.mean(1.0 / (r + 1.0)))}
    for k in ks:
        out[f"recall_{k}"] = float(np.mean(r < k))
    out["mean_rank"] = float(np.mean(r))
    out["median_rank"] = float(np.median(r))
    out["n_queries"] = int(r.size)
    return out


def evaluate_submission(gt: Mapping[str, str], results: Mapping[str, Sequence[str]], source: str = "results"
                        ) -> dict[str, float]:
    return summarize_ranks(list(submission_ranks(gt, results, source).values()))


def rank_order(scores: np.ndarray) -> np.ndarray:
    """Gallery indices of each row of ``scores`` [Q, N] by descending score; ties keep gallery order (stable).

    Sorted with numpy's default (SIMD) sort, about 2.5x faster than a stable sort; the rare rows that contain
    tied scores are sorted again stably, so the result always equals ``argsort(-scores, kind="stable")``.
    """
    s = np.asarray(scores)
    if s.ndim != 2:
        raise ValueError(f"scores must be [Q, N], got shape {s.shape}")
    neg = -s
    order = np.argsort(neg, axis=1)
    ranked = np.take_along_axis(neg, order, axis=1)
    tied = (ranked[:, 1:] == ranked[:, :-1]).any(axis=1)
    if tied.any():
        order[tied] = np.argsort(neg[tied], axis=1, kind="stable")
    return order


def ranks_from_scores(scores: np.ndarray, target_index: Sequence[int] | np.ndarray) -> np.ndarray:
    """0-based rank of each query's target under :func:`rank_order` (exactly the submission's order)."""
    scores = np.asarray(scores)
    tgt = np.asarray(target_index, dtype=np.int64)
    if scores.ndim != 2 or tgt.shape != (scores.shape[0],):
        raise ValueError(f"scores must be [Q, N] and targets [Q]; got {scores.shape} and {tgt.shape}")
    if tgt.size and (tgt.min() < 0 or tgt.max() >= scores.shape[1]):
        raise ValueError("target index outside the gallery")
    order = rank_order(scores)
    return np.argmax(order == tgt[:, None], axis=1)


def evaluate_scores(scores: np.ndarray, query_ids: Sequence[str], gallery_ids: Sequence[str],
                    gt: Mapping[str, str]) -> tuple[dict[str, float], np.ndarray]:
    """Metrics of a score matrix against ``gt``; returns (metrics, per-query ranks aligned with ``query_ids``).

    Every query must have a ground-truth target in the gallery (an error names the first that does not).
    """
    pos = {g: i for i, g in enumerate(gallery_ids)}
    tgt = []
    for q in query_ids:
        if q not in gt:
            raise KeyError(f"query {q!r} has no ground-truth track")
        if gt[q] not in pos:
            raise KeyError(f"query {q!r}: its target track {gt[q]!r} is not in the gallery")
        tgt.append(pos[gt[q]])
    ranks = ranks_from_scores(scores, np.asarray(tgt))
    return summarize_ranks(ranks), ranks


def random_ranking_metrics(n_queries: int, n_gallery: int, seed: int = 0, repeats: int = 20) -> dict[str, float]:
    """Metrics of uniformly random rankings (the chance level), averaged over ``repeats`` draws."""
    rng = np.random.default_rng(seed)
    ranks = rng.integers(0, n_gallery, size=(repeats, n_queries))
    per = [summarize_ranks(r) for r in ranks]
    return {k: float(np.mean([p[k] for p in per])) for k in per[0]} | {"n_queries": n_queries}


def expected_random_mrr(n_gallery: int) -> float:
    """Exact expectation of MRR under a uniformly random ranking of ``n_gallery`` tracks."""
    return float(np.mean(1.0 / np.arange(1, n_gallery + 1)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lib.metrics", description=__doc__.split("\n\n")[0])
    ap.add_argument("gt", help="ground truth {query_uuid: track_uuid}")
    ap.add_argument("results", help="submission {query_uuid: [track uuids, best first]}")
    ap.add_argument("--per-query", help="also write {query_uuid: rank} to this JSON file")
    args = ap.parse_args(argv)
    gt = load_gt(args.gt)
    results = load_results(args.results)
    ranks = submission_ranks(gt, results, source=args.results)
    if args.per_query:
        write_json(args.per_query, ranks)
    print(json.dumps(summarize_ranks(list(ranks.values()))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
