"""Embed one trained configuration: gallery tracks and query sentences of the test, val and train splits.

``python -m lib.embed PARAMS.yaml CHECKPOINT [--out DIR] [--data-root D] [--prep-dir P] [--splits test,val,train]``

Writes into ``out_dir`` (formats: docs/architecture.md, read by ``lib.ensemble.scores``):

- ``gallery.npz`` (``ids``, ``feats`` [N, D]) and ``queries.npz`` (``ids``, ``feats`` [Q, S, D], ``n_sentences``
  [Q]) for the test split: every test track (Part One: every frame, track = mean of its frame embeddings; Part Two:
  its evenly spaced frames, as the family defines) and every test query;
- ``val_gallery.npz`` / ``val_queries.npz``: the val split of ``PREP/split.json`` (its tracks are the gallery and
  each track's own description is its query; query id = track id), used to fit ensemble weights;
- ``train_gallery.npz``: the training tracks with at most ``train_frames`` evenly spaced frames each (default 8),
  for the attribute classifiers of the re-rank (``lib.ensemble.rerank``);
- ``embedding.json`` (name, family, scoring rule, published weight, ablation flag, configuration file, overrides,
  checkpoint, per-split counts and timings) and ``run_info.json``.

Which sentences: test queries are the dataset's ``test-queries.json``, or ``PREP/text/test-queries_nlpaug.json``
when the configuration trains on subject-prefixed text (``data.text: nlpaug``), as published; val queries come from
the family (``Family.query_sentences``), i.e. the same text the model was validated on.

Each finished split is recorded in ``progress.json`` under a fingerprint of the configuration and the checkpoint
file's content (sha256), with content keys of what the split read: its tracks' annotation entries (and the videos'
size and modification time) for the gallery, its query ids and sentences for the queries. An interrupted run resumes
with the missing splits; an edit recomputes only what read it (one edited query sentence: the test queries, not the
gallery); ``--force`` (or ``CFNL_FORCE=1``) recomputes everything. On a GPU the forward passes
run under bfloat16 autocast; frames are decoded once per track and batched by the family's gallery loader with
DataLoader workers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lib.cityflow import check_tracks, load_queries
from lib.config import RunConfig, parse_override, resolve_params_path
from lib.distributed import autocast
from lib.embeddings import load_member, score_matrix, write_manifest
from lib.errors import InputError, MissingInputError
from lib.families import load_config
from lib.io import (
    content_hash,
    file_hash,
    file_signature,
    force_requested,
    load_npz,
    read_json,
    save_npz,
    write_json,
    write_run_info,
)
from lib.paths import ROOT, data_dir, runs_dir
from lib.paths import prep_dir as prep_dir_of
from lib.prep import nlpaug_test_queries

SPLITS = ("test", "val", "train")
PROGRESS = "progress.json"


def default_workers() -> int:
    """DataLoader workers for the gallery loader: none on <= 2 cores (a worker process then costs more in
    inter-process transfer of every frame's crops than it overlaps: measured 0.5 s in-process vs 2.0 s with one
    worker for the tiny test split), else up to 4."""
    n = os.cpu_count() or 1
    return 0 if n <= 2 else min(4, n - 1)


def is_ablation(cfg: RunConfig) -> bool:
    """Configurations that are studied but never ensembled: ``ensemble_weight: 0`` or the crop-only single-stream
    model (``model.motion_stream: false``)."""
    crop_only = cfg.family == "dual_stream" and not bool(getattr(cfg.model, "motion_stream", True))
    return crop_only or cfg.ensemble_weight == 0


def test_query_sentences(cfg: RunConfig, data_root: Path, prep_dir: Path) -> tuple[list[str], list[list[str]]]:
    """(query ids, sentences) of the test split in the text variant the configuration was trained on."""
    raw_path = data_root / "test-queries.json"
    raw = load_queries(raw_path)
    if getattr(cfg.data, "text", "plain") == "nlpaug":
        path = nlpaug_test_queries(prep_dir)
        if not path.exists():
            raise FileNotFoundError(f"{path}: the nlpaug test queries of configuration {cfg.name} are missing "
                                    "(run 03_text_augmentation / python -m lib.text augment)")
        aug = load_queries(path)
        missing = [q for q in raw if q not in aug]
        if missing:
            raise InputError(f"{path}: queries {missing[:3]} of {raw_path} are missing (re-run 03_text_augmentation)")
        return list(raw), [_sentences(aug[q], path, q) for q in raw]
    return list(raw), [_sentences(raw[q], raw_path, q) for q in raw]


def _sentences(value: Any, path: Path, qid: str) -> list[str]:
    sents = value["nl"] if isinstance(value, Mapping) else value
    if not isinstance(sents, list) or not sents or not all(isinstance(s, str) for s in sents):
        raise InputError(f"{path}: query {qid}: expected a non-empty list of sentences")
    return list(sents)


def subsample_frames(track: Mapping[str, Any], k: int | None) -> dict[str, Any]:
    """The track with at most ``k`` evenly spaced frames (and their boxes)."""
    from lib.families.base import evenly_spaced

    idx = evenly_spaced(len(track["frames"]), k)
    return {**track, "frames": [track["frames"][i] for i in idx], "boxes": [track["boxes"][i] for i in idx]}


def fingerprint(cfg: RunConfig, checkpoint: Path, extra: Mapping[str, Any]) -> str:
    """The configuration, the checkpoint's bytes and the run's parameters (not its inputs: see ``gallery_key``)."""
    h = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True, default=str).encode())
    h.update(file_hash(checkpoint).encode())
    h.update(json.dumps(dict(extra), sort_keys=True, default=str).encode())
    return h.hexdigest()


def gallery_key(tracks: Mapping[str, Mapping[str, Any]], data_root: Path) -> str:
    """What a gallery is computed from: its tracks' ids, frames and boxes in order, and each camera's video
    (size and modification time: the frames are extracted from it)."""
    from lib.cityflow import camera_of

    cams = sorted({camera_of(t["frames"][0]) for t in tracks.values() if t.get("frames")})
    return content_hash({"tracks": [[u, t["frames"], t["boxes"]] for u, t in tracks.items()],
                         "videos": {c: file_signature(data_root / c / "vdo.avi") for c in cams}})


def _query_array(feats: np.ndarray, sentences: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
    n = np.array([len(s) for s in sentences], dtype=np.int64)
    feats = np.asarray(feats, dtype=np.float32)
    if feats.shape[:2] != (len(sentences), int(n.max(initial=0))):
        raise ValueError(f"embed_queries returned {feats.shape} for {len(sentences)} queries of up to "
                         f"{int(n.max(initial=0))} sentences")
    return feats, n


def embed_config(cfg: RunConfig, checkpoint: str | os.PathLike[str], data_root: str | os.PathLike[str],
                 prep_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                 splits: Sequence[str] = SPLITS, train_frames: int | None = 8, workers: int | None = None,
                 device: str | None = None, amp: bool | None = None, force: bool = False,
                 config_path: str | None = None, overrides: Mapping[str, Any] | None = None,
                 log: Any = print, allow_config_mismatch: bool = False) -> dict[str, Any]:
    """Embed ``splits`` of one configuration (see the module docstring); return the per-split record."""
    import torch

    from lib.families import TrainContext, get_family, load_trained_model
    from lib.prep import load_split, split_file

    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise InputError(f"--splits: unknown split(s) {unknown}; known: {SPLITS}")
    if amp is None:  # the configuration's precision switch (float32 unless it opts in to bf16 autocast)
        amp = bool(cfg.train.amp)
    ckpt = Path(checkpoint)
    if not ckpt.exists():
        raise MissingInputError(f"{ckpt}: checkpoint not found (train {cfg.name} first: 04_train / lib.train)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ctx = TrainContext.create(data_root, prep_dir, device=device,
                              workers=default_workers() if workers is None else workers, log=log)
    root, prep = ctx.data_root.root, ctx.prep_dir
    force = force_requested(force)
    fp = fingerprint(cfg, ckpt, {"train_frames": train_frames, "data_root": str(root), "prep_dir": str(prep)})
    progress = read_json(out / PROGRESS) if (out / PROGRESS).exists() and not force else {}
    if progress.get("fingerprint") != fp:
        progress = {"fingerprint": fp, "splits": {}}

    split_ids = load_split(prep) if ("val" in splits or "train" in splits) else {}
    # the validator's per-track checks on every track embedded, before the first forward pass
    data_check: dict[str, Any] = {}
    if "test" in splits:
        data_check["test"] = check_tracks(ctx.test_tracks, ctx.data_root.test_tracks, require_nl=False,
                                          data_root=root)
    used = [u for s in ("val", "train") if s in splits for u in split_ids[s]]
    if used:
        missing = [u for u in used if u not in ctx.train_tracks]
        if missing:
            raise InputError(f"{split_file(prep)}: {len(missing)} track id(s) not in {ctx.data_root.train_tracks}, "
                             f"e.g. {missing[:3]}")
        data_check["train"] = check_tracks({u: ctx.train_tracks[u] for u in used}, ctx.data_root.train_tracks,
                                           require_nl=False, data_root=root)
    for part, rec in data_check.items():
        if rec["boxes_partly_outside"]:
            log(f"note: {part}: {rec['boxes_partly_outside']} box(es) lie partly outside their frame: cropped by the "
                "family's rule (counted in embedding.json)")

    fam = get_family(cfg.family)
    from lib.families.weights import config_mismatch

    mismatch = config_mismatch(cfg, ckpt)
    if mismatch is not None and allow_config_mismatch:
        log(f"WARNING: --allow-config-mismatch: {mismatch}")
    model = load_trained_model(cfg, ckpt, device=ctx.device, allow_config_mismatch=allow_config_mismatch)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"{cfg.name}: {cfg.family} model from {ckpt} ({n_params / 1e6:.1f} M parameters) on {ctx.device}")

    def gallery(tracks: dict[str, dict[str, Any]], frames: int | None) -> tuple[np.ndarray, float, int]:
        t0 = time.perf_counter()
        with autocast(ctx.device, amp), torch.no_grad():
            feats = fam.embed_gallery(model, cfg, ctx, tracks, frames_per_track=frames)
        feats = np.asarray(feats, dtype=np.float32)
        if feats.shape[0] != len(tracks):
            raise ValueError(f"{cfg.name}: embed_gallery returned {feats.shape[0]} rows for {len(tracks)} tracks")
        return feats, time.perf_counter() - t0, sum(len(frames_used(t, frames)) for t in tracks.values())

    def frames_used(track: Mapping[str, Any], frames: int | None) -> list[int]:
        """The frame positions the family embeds (its own rule when it publishes one, e.g. Part Two's)."""
        from lib.families.base import evenly_spaced

        rule = getattr(fam, "gallery_frame_indices", None)
        n = len(track["frames"])
        return list(rule(cfg, n, frames)) if rule is not None else evenly_spaced(n, frames)

    def queries(sentences: list[list[str]]) -> tuple[np.ndarray, np.ndarray, float]:
        t0 = time.perf_counter()
        with autocast(ctx.device, amp), torch.no_grad():
            feats = fam.embed_queries(model, cfg, sentences, cache_dir=ctx.cache_dir)
        f, n = _query_array(feats, sentences)
        return f, n, time.perf_counter() - t0

    files = {"test": ("gallery.npz", "queries.npz"), "val": ("val_gallery.npz", "val_queries.npz"),
             "train": ("train_gallery.npz", None)}
    for split in splits:
        if split == "test":
            tracks = dict(ctx.test_tracks)
            g_frames: int | None = getattr(cfg.embed, "frames_per_track", None)
            qids, sents = test_query_sentences(cfg, root, prep)
        elif split == "val":
            qids = list(split_ids["val"])
            tracks = {u: ctx.train_tracks[u] for u in qids}
            g_frames = getattr(cfg.embed, "frames_per_track", None)
            sents = fam.query_sentences(cfg, ctx, qids)
        else:
            tracks = {u: subsample_frames(ctx.train_tracks[u], train_frames) for u in split_ids["train"]}
            g_frames, qids, sents = None, [], []
        gkey = gallery_key(tracks, root)
        qkey = content_hash([qids, sents]) if files[split][1] else None
        prev = progress["splits"].get(split) or {}
        gfile, qfile = files[split]
        if (prev.get("gallery_key") == gkey and prev.get("query_key") == qkey and (out / gfile).exists()
                and (qfile is None or (out / qfile).exists())):
            log(f"{cfg.name}: {split} split already embedded from the same tracks and sentences, skipped")
            continue
        rec: dict[str, Any] = {"gallery_key": gkey, "query_key": qkey}
        if prev.get("gallery_key") == gkey and (out / gfile).exists():
            g = load_npz(out / gfile)["feats"]
            rec.update(gallery_s=prev.get("gallery_s", 0.0), frames=prev.get("frames", 0), gallery_reused=True)
            log(f"{cfg.name}: {split} gallery unchanged (same tracks), reused")
        else:
            g, rec["gallery_s"], rec["frames"] = gallery(tracks, g_frames)
        if qfile is not None:
            q, n, rec["queries_s"] = queries(sents)
            save_npz(out / qfile, ids=np.array(qids), feats=q, n_sentences=n)
            rec.update(queries=len(qids))
        if not rec.get("gallery_reused"):
            save_npz(out / gfile, ids=np.array(list(tracks)), feats=g)
        rec.update(tracks=len(tracks))
        if split == "train":
            rec.update(frames_per_track=train_frames)
        rec["frames_per_s"] = rec["frames"] / max(rec["gallery_s"], 1e-9)
        progress["splits"][split] = rec
        write_json(out / PROGRESS, progress)
        log(f"{cfg.name}: {split}: {rec['tracks']} tracks ({rec['frames']} frames) in {rec['gallery_s']:.1f} s"
            + (f", {rec['queries']} queries in {rec['queries_s']:.1f} s" if "queries" in rec else ""))

    cfg_file = resolve_params_path(config_path or ROOT / cfg.source)
    write_manifest(out, cfg.name, cfg.family, fam.scoring_rule, cfg.ensemble_weight, ablation=is_ablation(cfg),
                   val_is_training_fit=getattr(cfg.train, "train_on", "split") == "all",
                   config_path=str(cfg_file), overrides=dict(overrides or {}), checkpoint=str(ckpt.resolve()),
                   splits=progress["splits"], data_check=data_check,
                   **({"config_mismatch": mismatch} if mismatch is not None else {}))
    write_run_info(out, {"config": cfg.to_dict(), "source": cfg.source, "checkpoint": str(ckpt),
                         "data_root": str(root), "prep_dir": str(prep), "splits": list(splits),
                         "train_frames": train_frames, "device": str(ctx.device), "amp": amp,
                         "overrides": dict(overrides or {})})
    return progress["splits"]


def evaluate_embeddings(out_dir: str | os.PathLike[str], data_root: str | os.PathLike[str] | None = None
                        ) -> dict[str, Any]:
    """Val (and test, when ``test-gt.json`` exists) metrics of one configuration's written embeddings."""
    from lib.metrics import evaluate_scores, load_gt

    d = Path(out_dir)
    res: dict[str, Any] = {}
    if (d / "val_gallery.npz").exists():
        m = load_member(d, "val")
        assert m.queries is not None
        qids = list(m.queries.ids)
        res["val"] = evaluate_scores(score_matrix(m), qids, list(m.gallery.ids), {q: q for q in qids})[0]
    gt = Path(data_root) / "test-gt.json" if data_root is not None else None
    if gt is not None and gt.exists() and (d / "gallery.npz").exists():
        m = load_member(d, "test")
        assert m.queries is not None
        res["test"] = evaluate_scores(score_matrix(m), list(m.queries.ids), list(m.gallery.ids), load_gt(gt))[0]
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lib.embed", description=__doc__.split("\n\n")[0])
    ap.add_argument("config", help="params YAML (path or configuration name)")
    ap.add_argument("checkpoint", help="trained weights (<train out>/best.safetensors)")
    ap.add_argument("--out", help="output folder (default: ARTIFACTS/runs/cli/embed/<name>)")
    ap.add_argument("--data-root", help="CityFlow-NL layout root (default: ARTIFACTS/data/tiny)")
    ap.add_argument("--prep-dir", help="preprocessing folder (default: ARTIFACTS/prep/tiny)")
    ap.add_argument("--splits", default=",".join(SPLITS), help="comma-separated subset of test,val,train")
    ap.add_argument("--train-frames", type=int, default=8, help="frames per training track (re-rank classifiers)")
    ap.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: 0 on <= 2 cores, "
                    "else up to 4)")
    ap.add_argument("--device", default=None, help="cpu / cuda (default: cuda when available)")
    ap.add_argument("--amp", choices=("config", "on", "off"), default="config",
                    help="bfloat16 autocast on GPU: as the configuration's train.amp (default), or forced on/off")
    ap.add_argument("--override", default=None, help="JSON of nested overrides, as for lib.train")
    ap.add_argument("--force", action="store_true", help="recompute splits already embedded")
    ap.add_argument("--allow-config-mismatch", action="store_true",
                    help="embed a checkpoint trained with another configuration (recorded in embedding.json)")
    a = ap.parse_args(argv)
    overrides = parse_override(a.override)
    cfg = load_config(a.config, overrides)
    out = a.out or str(runs_dir("cli") / "embed" / cfg.name)
    data_root = a.data_root or str(data_dir("tiny"))
    prep_dir = a.prep_dir or str(prep_dir_of("tiny"))
    splits = embed_config(cfg, a.checkpoint, data_root, prep_dir, out, splits=a.splits.split(","),
                          train_frames=a.train_frames, workers=a.workers, device=a.device,
                          amp=None if a.amp == "config" else a.amp == "on",
                          force=a.force, config_path=str(resolve_params_path(a.config)), overrides=overrides,
                          allow_config_mismatch=a.allow_config_mismatch)
    print(json.dumps({"out": out, "splits": splits, **evaluate_embeddings(out, data_root)}))
    return 0


if __name__ == "__main__":
    from lib.cli import run_main

    raise SystemExit(run_main(main))
