"""Embedding and ranking benchmarks (``make bench``; ``run(quick)`` -> list of result dicts).

1. ``gallery_embedding``: crop embeddings of every frame of every test track (the Part One gallery) of the
   ``default`` synthetic preset (``tiny`` when quick) with a randomly initialised ``motion_effb3_NOCLS_nlpaug_320_cpu``
   crop stream. Ours: ``lib.families.gallery`` decodes each frame file once and crops every box it holds (tracks of
   a camera share frames), batched across tracks, decoded by DataLoader workers (> 2 cores) or by threads of the main
   process (<= 2 cores). Baseline: the straightforward loop (the
   original's): track by track, the frame file opened again for every crop, in one process. The details also
   give our loader with decoding per crop (isolates decode-once), the decoding alone (no model), and the opt-in
   ``reduced_decode`` path (libjpeg DCT scaling where every crop of a frame allows it): how many frames it reduced,
   its time, and how far its track embeddings are from the default path's (max abs diff, cosine).
2. ``ranking_530x530``: scores of 8 configurations for 530 queries x 530 tracks (5 Part One at E = 1024 and 3
   Part Two at 512, the paper's widths; and at the CPU variants' widths, 256 and 512), the published weighted sum
   and the full ranking of every query. Ours: ``lib.ensemble.scores.FusedIndex`` (the members' rule vectors side by
   side, weights folded into the queries: one GEMM) and ``lib.metrics.rank_order``; the index is built once when the
   embeddings are loaded (timed apart). The details also time ranking again under new weights from the members'
   score matrices kept in memory (what a weight fit does). Baseline: the published formula written as loops over
   queries and tracks (numpy dot per pair).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np


def _dataset(preset: str) -> Path:
    from lib.frames import extract_dataset
    from lib.paths import data_dir

    root = data_dir(preset)
    if not (root / "dataset.json").exists():
        from lib.synthetic import generate

        generate(preset=preset, seed=0, out=root)
    extract_dataset(root, only_referenced=True, progress=False)
    return root


def _per_crop_loop(layout: Any, tracks: dict[str, dict[str, Any]], crop_fn: Any, embed_fn: Any,
                   batch_size: int) -> np.ndarray:
    """The straightforward way (the original's test loop): track by track, open the frame file again for every
    crop, one process, forward each track's crops in batches, mean over the track."""
    import torch

    from lib.families.images import load_rgb

    out = []
    for uid, tr in tracks.items():
        crops = [crop_fn(load_rgb(layout.frame_path(f), what=f"track {uid}"), b)
                 for f, b in zip(tr["frames"], tr["boxes"])]
        feats = [embed_fn(None, torch.from_numpy(np.stack(crops[lo:lo + batch_size]))).float().numpy()
                 for lo in range(0, len(crops), batch_size)]
        out.append(np.concatenate(feats).mean(0))
    return np.stack(out).astype(np.float32)


def bench_gallery(quick: bool) -> dict[str, Any]:
    import torch

    from lib.cityflow import Layout, load_tracks
    from lib.embed import default_workers
    from lib.families import create_model, load_config
    from lib.families.gallery import default_decode_threads, embed_tracks, expand_crop_fn, plan_requests

    workers = default_workers()  # what lib.embed uses on this machine
    threads = default_decode_threads() if workers == 0 else 0
    preset = "tiny" if quick else "default"
    layout = Layout.of(_dataset(preset))
    tracks = load_tracks(layout.test_tracks)
    cfg = load_config("motion_effb3_NOCLS_nlpaug_320_cpu")
    torch.manual_seed(0)
    model = create_model(cfg).eval()
    crop_fn = expand_crop_fn(cfg.data.crop_area, cfg.model.image_size)
    bs = cfg.embed.batch_size

    @torch.no_grad()
    def embed_fn(_t: Any, crops: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(model.crop_head(model.crop_embedding(crops)), dim=-1)

    def decode_only(_t: Any, crops: torch.Tensor) -> torch.Tensor:
        return crops.reshape(len(crops), -1)[:, :8].float()

    def ours_with(fn: Any, decode_once: bool, reduced_decode: bool = False) -> tuple[float, np.ndarray]:
        t0 = time.perf_counter()
        out = embed_tracks(layout, tracks, crop_fn, fn, aggregate="mean", batch_size=bs, workers=workers,
                           decode_once=decode_once, reduced_decode=reduced_decode)
        return time.perf_counter() - t0, out

    def loop_with(fn: Any) -> tuple[float, np.ndarray]:
        t0 = time.perf_counter()
        out = _per_crop_loop(layout, tracks, crop_fn, fn, bs)
        return time.perf_counter() - t0, out

    n_crops = sum(len(t["frames"]) for t in tracks.values())
    n_files = len({f for t in tracks.values() for f in t["frames"]})
    dec_loop, _ = loop_with(decode_only)
    dec_again, _ = ours_with(decode_only, False)
    dec_once, _ = ours_with(decode_only, True)
    # each path twice, alternating: the first pass also pays oneDNN's kernel set-up for every new batch shape
    base_first, base = loop_with(embed_fn)
    ours_first, ours = ours_with(embed_fn, True)
    base_s, _ = loop_with(embed_fn)
    ours_s, _ = ours_with(embed_fn, True)
    again_s, _ = ours_with(embed_fn, False)
    reduced = _reduced_decode_details(layout, tracks, crop_fn, plan_requests(tracks, None), ours,
                                      lambda: ours_with(embed_fn, True, reduced_decode=True),
                                      lambda: ours_with(decode_only, True, reduced_decode=True)[0])
    return {"name": f"gallery_embedding_{preset}_test", "ours_s": ours_s, "baseline_s": base_s,
            "ratio": base_s / ours_s,
            "details": {"preset": preset, "tracks": len(tracks), "crops": n_crops, "frame_files": n_files,
                        "crops_per_frame_file": n_crops / n_files, "config": cfg.name,
                        "image_size": cfg.model.image_size, "batch_size": bs, "workers": workers,
                        "decode_threads": threads,
                        "cpus": os.cpu_count(), "timed": "second pass of each path (first pass below)",
                        "baseline": "per-track loop, the frame file opened again for every crop, one process",
                        "first_pass_s": {"ours": ours_first, "baseline": base_first},
                        "loader_decode_per_crop_s": again_s, "ratio_vs_loader_decode_per_crop": again_s / ours_s,
                        "decode_only_s": {"ours": dec_once, "loader_decode_per_crop": dec_again,
                                          "per_crop_loop": dec_loop},
                        "decode_only_ratio": dec_loop / dec_once,
                        "max_abs_diff_vs_baseline": float(np.abs(ours - base).max()),
                        "reduced_decode": reduced,
                        "goal": "ratio >= 3"}}


def _reduced_decode_details(layout: Any, tracks: dict[str, dict[str, Any]], crop_fn: Any, plan: dict[str, Any],
                            ours: np.ndarray, embed: Any, decode_only: Any) -> dict[str, Any]:
    """The opt-in ``reduced_decode`` path, run once after the timed passes (the batch shapes are warm): the frames it
    decodes reduced, by factor, its times (one pass each, to set beside ``ours_s`` and ``decode_only_s.ours``), and
    its track embeddings against the default path's ``ours``. On the synthetic presets' small frames (320x180,
    640x360) few or no crops are large enough for a reduction; there the path equals the default one."""
    from PIL import Image

    from lib.families.gallery import frame_reduction

    with Image.open(layout.frame_path(next(iter(plan)))) as im:
        w, h = im.size  # every frame of a synthetic preset has its size
    factors = [frame_reduction(crop_fn, [q.box for q in reqs], w, h) for reqs in plan.values()]
    dec_s = decode_only()
    emb_s, red = embed()
    cos = np.sum(red * ours, 1) / np.maximum(np.linalg.norm(red, axis=1) * np.linalg.norm(ours, axis=1), 1e-12)
    return {"frame_size": [w, h], "frames_by_reduction": {str(r): factors.count(r) for r in (1, 2, 4, 8)},
            "crops_reduced": sum(len(reqs) for f, reqs in zip(factors, plan.values()) if f > 1),
            "rule": "frame decoded at 1/r when every crop region of it keeps >= the model input's pixels at 1/r",
            "embed_s": emb_s, "decode_only_s": dec_s,
            "max_abs_diff_vs_ours": float(np.abs(red - ours).max()),
            "min_cosine_vs_ours": float(cos.min()), "mean_cosine_vs_ours": float(cos.mean()),
            "identical_to_ours": bool(np.array_equal(red, ours))}


PAPER_WIDTHS = (1024, 512)  # Part One E, Part Two embedding
CPU_WIDTHS = (256, 512)  # the default profile's CPU variants


def _members(rng: np.random.Generator, widths: tuple[int, int] = PAPER_WIDTHS, n: int = 530) -> list[Any]:
    from lib.embeddings import Gallery, Member, Queries

    ids_q = [f"q{i:04d}" for i in range(n)]
    ids_g = [f"t{i:04d}" for i in range(n)]
    e1, e2 = widths
    out = []
    for i, (rule, d, s, w) in enumerate([("mean_dot", e1, 4, 4.0), ("mean_dot", e1, 4, 1.0),
                                         ("mean_dot", e1, 3, 1.0), ("mean_dot", e1, 4, 1.0),
                                         ("mean_dot", e1, 3, 1.0), ("cosine", e2, 3, 1.0),
                                         ("cosine", e2, 3, 1.0), ("cosine", e2, 3, 1.0)]):
        q = rng.normal(size=(n, s, d)).astype(np.float32)
        q /= np.linalg.norm(q, axis=2, keepdims=True)
        g = rng.normal(size=(n, d)).astype(np.float32)
        out.append(Member(f"m{i}", rule, w, Gallery(ids_g, g), Queries(ids_q, q, np.full(n, s))))
    return out


def _ranking_ours(index: Any, weights: list[float]) -> np.ndarray:
    from lib.metrics import rank_order

    return rank_order(index.scores(weights))


def _ranking_loops(members: list[Any]) -> dict[str, list[str]]:
    """The published formula, query by query and track by track."""
    gids = members[0].gallery.ids
    out = {}
    for qi, q in enumerate(members[0].queries.ids):
        scores = np.zeros(len(gids))
        for m in members:
            sents = m.queries.feats[qi]
            qn = sents.sum(0) / np.linalg.norm(sents.sum(0)) if m.rule == "cosine" else None
            for t in range(len(gids)):
                g = m.gallery.feats[t]
                if m.rule == "mean_dot":
                    scores[t] += m.weight * np.mean([np.dot(s, g) for s in sents])
                else:
                    scores[t] += m.weight * np.dot(qn, g / np.linalg.norm(g))
        out[q] = [gids[t] for t in np.argsort(-scores, kind="stable")]
    return out


def bench_ranking(quick: bool, widths: tuple[int, int] = PAPER_WIDTHS) -> dict[str, Any]:
    from lib.embeddings import score_matrix
    from lib.ensemble.scores import FusedIndex, combine, make_submission
    from lib.metrics import rank_order

    members = _members(np.random.default_rng(0), widths)
    weights = [m.weight for m in members]
    t0 = time.perf_counter()
    index = FusedIndex.build(members)  # loading time: per-member query / gallery vectors, aligned
    build_s = time.perf_counter() - t0
    _ranking_ours(index, weights)  # warm-up (BLAS threads)
    reps = 5 if quick else 20
    times, score_times = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        s = index.scores(weights)
        t1 = time.perf_counter()
        order = rank_order(s)
        times.append(time.perf_counter() - t0)
        score_times.append(t1 - t0)
    # weights changed, embeddings not (a weight fit, the notebook's weight sliders): per-member score matrices
    # computed once, then the weighted sum and the ranking only
    per_member = np.stack([score_matrix(m) for m in members])
    rank_order(combine(per_member, weights))
    reweight = []
    for _ in range(reps):
        t0 = time.perf_counter()
        rank_order(combine(per_member, weights))
        reweight.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    ours = make_submission(s, index.query_ids, index.gallery_ids)
    submission_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    base = _ranking_loops(members)
    base_s = time.perf_counter() - t0
    agree = float(np.mean([ours[q] == base[q] for q in ours]))  # float32 GEMM vs float64 loops: near-ties may swap
    agree10 = float(np.mean([ours[q][:10] == base[q][:10] for q in ours]))
    ours_s = float(np.median(times))
    dims = [int(m.gallery.feats.shape[1]) for m in members]
    label = "paper" if widths == PAPER_WIDTHS else "cpu_variant"
    return {"name": f"ranking_530x530_8_models_{label}_widths", "ours_s": ours_s, "baseline_s": base_s,
            "ratio": base_s / ours_s,
            "details": {"queries": 530, "tracks": 530, "models": len(members), "dims": dims, "repeats": reps,
                        "ours_min_s": float(np.min(times)), "scoring_median_s": float(np.median(score_times)),
                        "ranking_median_s": float(np.median(np.subtract(times, score_times))),
                        "reweight_and_rank_median_s": float(np.median(reweight)),
                        "index_build_s": build_s, "submission_lists_s": submission_s,
                        "identical_rankings": agree, "identical_top10": agree10, "order_shape": list(order.shape),
                        "gflop_per_ranking": 2 * 530 * 530 * sum(dims) / 1e9, "goal": "ours_s < 0.020"}}


def run(quick: bool = False) -> list[dict[str, Any]]:
    return [bench_ranking(quick, PAPER_WIDTHS), bench_ranking(quick, CPU_WIDTHS), bench_gallery(quick)]


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=True), indent=2))
