"""A small synthetic retrieval world for the ensemble / re-rank / report tests (no model needed).

Every track has a colour, a type and a manoeuvre; its latent vector is the sum of one vector per attribute value plus
an idiosyncratic part. Each "configuration" sees the latent through its own noise: Part One members store the mean
of several noisy, normalised frame embeddings; Part Two members a normalised vector. Query sentences are noisy,
normalised copies of the target's latent, and the descriptions are short sentences that a keyword parser reads.
"""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lib.embeddings import write_manifest
from lib.ensemble.rerank import AttributeLabels
from lib.io import save_npz

COLOURS = ("red", "blue", "white", "black")
TYPES = ("sedan", "suv", "truck")
MANOEUVRES = ("straight", "left", "right")
DIM = 32


@dataclass
class MemberSpec:
    name: str
    family: str  # dual_stream | instance
    weight: float
    noise: float  # query / gallery noise of this configuration
    ablation: bool = False


def keyword_parser(sentences: Sequence[str]) -> AttributeLabels:
    text = " ".join(sentences).lower()
    colours = tuple(c for c in COLOURS if c in text)
    vtype = next((t for t in TYPES if t in text), None)
    man = "left" if "left" in text else "right" if "right" in text else "straight" if "straight" in text else None
    return AttributeLabels(colours=colours, vtype=vtype, manoeuvre=man)


def _uid(rng: np.random.Generator) -> str:
    return str(uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | int(rng.integers(0, 2**63))))


def _sentence(c: str, t: str, m: str, k: int) -> str:
    verb = {"straight": "goes straight", "left": "turns left", "right": "turns right"}[m]
    return [f"A {c} {t} {verb}.", f"{c.title()} {t} {verb} at the intersection.", f"The {c} {t} {verb} slowly."][k % 3]


def make_world(root: Path, members: Sequence[MemberSpec], n_train: int = 90, n_val: int = 20, n_test: int = 40,
               seed: int = 0, sentences: int = 3, write_frames: bool = False) -> dict:
    """Write data_root, prep_dir and runs_dir/embed/<name> under ``root``; return their paths and the truth."""
    rng = np.random.default_rng(seed)
    basis = {v: rng.normal(size=DIM) for v in (*COLOURS, *TYPES, *MANOEUVRES)}
    n = n_train + n_val + n_test
    ids = [_uid(rng) for _ in range(n)]
    attrs = [(COLOURS[rng.integers(4)], TYPES[rng.integers(3)], MANOEUVRES[rng.integers(3)]) for _ in range(n)]
    latent = np.stack([basis[c] + basis[t] + basis[m] + 0.8 * rng.normal(size=DIM) for c, t, m in attrs])
    train_ids, val_ids, test_ids = ids[:n_train], ids[n_train:n_train + n_val], ids[n_train + n_val:]
    lat = dict(zip(ids, latent))
    att = dict(zip(ids, attrs))

    data_root, prep_dir, runs = root / "data", root / "prep", root / "runs"
    data_root.mkdir(parents=True)
    prep_dir.mkdir(parents=True)
    train_json = {u: {"frames": [f"train/S01/c001/img1/{i + 1:06d}.jpg" for i in range(3)],
                      "boxes": [[10, 10, 20, 20]] * 3, "nl": [_sentence(*att[u], k) for k in range(3)]}
                  for u in train_ids + val_ids}
    test_json = {u: {"frames": [f"validation/S02/c002/img1/{i + 1:06d}.jpg" for i in range(3)],
                     "boxes": [[10, 10, 20, 20]] * 3} for u in test_ids}
    qids = [_uid(rng) for _ in test_ids]
    queries = {q: [_sentence(*att[t], k + int(rng.integers(3))) for k in range(3)] for q, t in zip(qids, test_ids)}
    gt = dict(zip(qids, test_ids))
    (data_root / "train-tracks.json").write_text(json.dumps(train_json))
    (data_root / "test-tracks.json").write_text(json.dumps(test_json))
    (data_root / "test-queries.json").write_text(json.dumps(queries))
    (data_root / "test-gt.json").write_text(json.dumps(gt))
    (data_root / "synthetic-labels.json").write_text(json.dumps(
        {u: {"colour": a[0], "type": a[1], "manoeuvre": a[2]} for u, a in att.items()}))
    if write_frames:
        import cv2

        for i in range(3):
            frame = np.full((48, 64, 3), 40 * i, dtype=np.uint8)
            frame[10:30, 10:30] = (0, 0, 255)
            path = data_root / f"validation/S02/c002/img1/{i + 1:06d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), frame)
    (prep_dir / "split.json").write_text(json.dumps({"train": train_ids, "val": val_ids}))

    embed_dirs = []
    for spec in members:
        mrng = np.random.default_rng([seed, zlib.crc32(spec.name.encode())])
        d = runs / "embed" / spec.name
        d.mkdir(parents=True)

        def gallery(track_ids: Sequence[str], spec: MemberSpec = spec, mrng: np.random.Generator = mrng
                    ) -> np.ndarray:
            out = []
            for u in track_ids:
                frames = lat[u][None] + spec.noise * mrng.normal(size=(4, DIM))
                frames /= np.linalg.norm(frames, axis=1, keepdims=True)
                out.append(frames.mean(0) if spec.family == "dual_stream" else frames.sum(0)
                           / np.linalg.norm(frames.sum(0)))
            return np.stack(out).astype(np.float32)

        def query_feats(targets: Sequence[str], spec: MemberSpec = spec, mrng: np.random.Generator = mrng
                        ) -> np.ndarray:
            q = np.stack([lat[t][None] + 2 * spec.noise * mrng.normal(size=(sentences, DIM)) for t in targets])
            return (q / np.linalg.norm(q, axis=2, keepdims=True)).astype(np.float32)

        # shuffle the gallery order per member: the ensemble must align by id
        perm = mrng.permutation(len(test_ids))
        shuffled = [test_ids[i] for i in perm]
        save_npz(d / "gallery.npz", ids=np.array(shuffled), feats=gallery(shuffled))
        save_npz(d / "queries.npz", ids=np.array(qids), feats=query_feats(test_ids))
        save_npz(d / "val_gallery.npz", ids=np.array(val_ids), feats=gallery(val_ids))
        save_npz(d / "val_queries.npz", ids=np.array(val_ids), feats=query_feats(val_ids))
        save_npz(d / "train_gallery.npz", ids=np.array(train_ids), feats=gallery(train_ids))
        rule = {"dual_stream": "mean_dot", "instance": "cosine"}[spec.family]
        write_manifest(d, spec.name, spec.family, rule, spec.weight, ablation=spec.ablation)
        embed_dirs.append(d)
    return {"data_root": data_root, "prep_dir": prep_dir, "runs_dir": runs, "embed_dirs": embed_dirs,
            "gt": gt, "attrs": att, "test_ids": test_ids, "query_ids": qids}
