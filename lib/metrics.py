"""The official CityFlow-NL retrieval metric, on submissions and on score matrices.

Official rule (AI City Challenge 2021, track 5): for every ground-truth query, ``rank`` is the 0-based position of
its target track in the submitted list, or 100 when the target is absent from the list. ``MRR = mean(1 / (rank +
1))``, ``Recall@k = share of queries with rank < k`` (the challenge reports k = 5 and 10; we add 1 and 25).

Command line::

    python -m lib.metrics GT.json RESULTS.json [--per-query OUT.json] [--tracks TEST_TRACKS.json]
                          [--strict] [--lenient]

prints one JSON object (``mrr``, ``recall_1``, ``recall_5``, ``recall_10``, ``recall_25``, ``n_queries``, and what
was ignored: ``extra_queries``, ``unknown_tracks``, ``missing_queries``) on its last line. ``GT.json`` is
``{query_uuid: track_uuid}`` (a one-element list is accepted too); ``RESULTS.json`` is ``{query_uuid: [track uuids,
best first]}`` and may be truncated.

Metrics say what they ignored: submitted queries that are not in the ground truth (``extra_queries``) and ranked ids
that are not test tracks (``unknown_tracks``, distinct ids; counted when the test tracks are known: ``--tracks``, by
default ``test-tracks.json`` beside ``GT.json``) are reported on stderr and in the JSON; ``--strict`` makes either an
error. A ground-truth query missing from the results is a one-line error that names it (silently scoring it would
change the number); ``--lenient`` counts it at rank 100 instead, as the official rule does for an absent target.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lib.errors import InputError
from lib.io import read_json, write_json

ABSENT_RANK = 100
RECALL_KS = (1, 5, 10, 25)


class MissingQueriesError(InputError, KeyError):
    """Ground-truth queries absent from a submission (a ``KeyError`` too, as before)."""

    __str__ = Exception.__str__


def _gt_target(query: str, value: Any, source: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        return value[0]
    raise InputError(f"{source}: query {query!r}: expected a track uuid (string), got {value!r}")


def load_gt(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read ``{query_uuid: track_uuid}``."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object {{query_uuid: track_uuid}}")
    return {q: _gt_target(q, v, str(path)) for q, v in data.items()}


def load_results(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Read a submission ``{query_uuid: [track uuids, best first]}``."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object {{query_uuid: [track uuids]}}")
    for q, v in data.items():
        if not isinstance(v, list) or not all(isinstance(t, str) for t in v):
            raise InputError(f"{path}: query {q!r}: expected a list of track uuids")
    return data


def official_rank(target: str, ranked: Sequence[str]) -> int:
    """0-based position of ``target`` in ``ranked``; 100 when absent (the official rule)."""
    try:
        return list(ranked).index(target)
    except ValueError:
        return ABSENT_RANK


def _shown(ids: Sequence[str]) -> str:
    return ", ".join(ids[:5]) + (f" (+{len(ids) - 5} more)" if len(ids) > 5 else "")


def submission_ranks(gt: Mapping[str, str], results: Mapping[str, Sequence[str]], source: str = "results",
                     lenient: bool = False) -> dict[str, int]:
    """Official rank of every ground-truth query's target in a submission. A ground-truth query missing from the
    submission is a :class:`MissingQueriesError` naming it, or (``lenient``) ranked 100 like an absent target."""
    missing = [q for q in gt if q not in results]
    if missing and not lenient:
        raise MissingQueriesError(f"{source}: {len(missing)} ground-truth quer"
                                  f"{'y is' if len(missing) == 1 else 'ies are'} missing from the submission: "
                                  f"{_shown(missing)} (--lenient counts them at rank {ABSENT_RANK})")
    return {q: official_rank(t, results[q]) if q in results else ABSENT_RANK for q, t in gt.items()}


def ignored_by_metric(gt: Mapping[str, str], results: Mapping[str, Sequence[str]],
                      tracks: Sequence[str] | None = None) -> dict[str, Any]:
    """What scoring ``results`` against ``gt`` ignores or assumes: submitted queries not in the ground truth,
    distinct ranked ids that are not test tracks (``None`` when ``tracks`` is not given) and ground-truth queries
    absent from the submission."""
    extra = [q for q in results if q not in gt]
    missing = [q for q in gt if q not in results]
    out: dict[str, Any] = {"extra_queries": len(extra), "missing_queries": len(missing), "unknown_tracks": None,
                           "examples": {"extra_queries": extra[:5], "missing_queries": missing[:5]}}
    if tracks is not None:
        known = set(tracks)
        unknown = sorted({t for ranked in results.values() for t in ranked if t not in known})
        out["unknown_tracks"] = len(unknown)
        out["examples"]["unknown_tracks"] = unknown[:5]
    return out


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
    ap.add_argument("--tracks", help="test tracks JSON, to count ranked ids that are not test tracks (default: "
                    "test-tracks.json beside GT.json, when there)")
    ap.add_argument("--strict", action="store_true",
                    help="submitted queries not in the ground truth or unknown track ids are an error")
    ap.add_argument("--lenient", action="store_true",
                    help="a ground-truth query missing from the submission counts at rank 100 (official rule)")
    args = ap.parse_args(argv)
    gt = load_gt(args.gt)
    results = load_results(args.results)
    tracks_path = Path(args.tracks) if args.tracks else Path(args.gt).parent / "test-tracks.json"
    if args.tracks and not tracks_path.exists():
        raise FileNotFoundError(f"{tracks_path}: --tracks file not found")
    tracks = None
    if tracks_path.exists():
        data = read_json(tracks_path)
        if not isinstance(data, dict):
            raise InputError(f"{tracks_path}: expected a JSON object {{track_uuid: track}}")
        tracks = list(data)
    ignored = ignored_by_metric(gt, results, tracks)
    ranks = submission_ranks(gt, results, source=args.results, lenient=args.lenient)
    def count(n: int, what: str) -> str:
        return f"{n} {what}{'y is' if n == 1 else 'ies are'}"

    ignored_notes, notes = [], []
    if ignored["extra_queries"]:
        ignored_notes.append(f"{count(ignored['extra_queries'], 'submitted quer')} not in {args.gt} (ignored): "
                             f"{_shown(ignored['examples']['extra_queries'])}")
    if ignored["unknown_tracks"]:
        ignored_notes.append(f"{ignored['unknown_tracks']} ranked track id(s) are not test tracks of {tracks_path} "
                             f"(they only push targets down): {_shown(ignored['examples']['unknown_tracks'])}")
    if args.strict and ignored_notes:
        raise InputError(f"{args.results}: --strict: " + "; ".join(ignored_notes))
    if ignored["missing_queries"]:  # only reached with --lenient
        notes.append(f"{count(ignored['missing_queries'], 'ground-truth quer')} missing from {args.results}, "
                     f"counted at rank {ABSENT_RANK}: {_shown(ignored['examples']['missing_queries'])}")
    notes = ignored_notes + notes
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    if args.per_query:
        write_json(args.per_query, ranks)
    print(json.dumps({**summarize_ranks(list(ranks.values())),
                      **{k: v for k, v in ignored.items() if k != "examples"}}))
    return 0


if __name__ == "__main__":
    from lib.cli import run_main

    raise SystemExit(run_main(main))
