"""Embedding folders, the contract between ``lib.embed`` (05, writes them) and ``lib.ensemble`` (06, reads them).

One folder per configuration: ``embedding.json`` (name, family, scoring rule, published weight, whether the
configuration is an ablation, and what it was computed from), ``gallery.npz``/``queries.npz`` (test split),
``val_gallery.npz``/``val_queries.npz`` and ``train_gallery.npz`` (for the attribute classifiers of the re-rank).
``*gallery.npz`` holds ``ids`` [N] and ``feats`` [N, D]; ``*queries.npz`` holds ``ids``, ``feats`` [Q, S, D] and
optionally ``n_sentences`` [Q] (queries with fewer sentences are zero-padded).

Scoring rules (``docs/reference.md``, P1.8 and P2.5), one per family (``Family.scoring_rule``):

- ``mean_dot`` (Part One): a query's score for a track is the mean over the query's sentences of ``q_s . g``, with
  ``g`` the mean of the track's frame embeddings (not re-normalised).
- ``cosine`` (Part Two): the cosine of the L2-normalised query (normalised sum of its normalised sentences) and the
  L2-normalised gallery feature.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lib.io import load_npz, read_json, write_json

RULES = ("mean_dot", "cosine")
MANIFEST = "embedding.json"
SPLIT_FILES = {"test": ("gallery.npz", "queries.npz"), "val": ("val_gallery.npz", "val_queries.npz"),
               "train": ("train_gallery.npz", None)}


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
    val_is_training_fit: bool = False
    """The configuration trained on its val tracks (``train.train_on: all``): its val scores are training fit."""


def load_gallery_embeddings(path: str | os.PathLike[str]) -> Gallery:
    z = _load(path, ("ids", "feats"))
    feats = z["feats"].astype(np.float32, copy=False)
    if feats.ndim != 2 or feats.shape[0] != len(z["ids"]):
        raise ValueError(f"{path}: feats must be [N, D] with N = len(ids); got {feats.shape}, {len(z['ids'])} ids")
    return Gallery([str(i) for i in z["ids"]], feats)


def load_query_embeddings(path: str | os.PathLike[str]) -> Queries:
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


def write_manifest(embed_dir: str | os.PathLike[str], name: str, family: str, rule: str, weight: float,
                   ablation: bool = False, **extra: Any) -> Path:
    if rule not in RULES:
        raise ValueError(f"{name}: unknown scoring rule {rule!r} of family {family!r}; known: {RULES}")
    return write_json(Path(embed_dir) / MANIFEST, {"name": name, "family": family, "rule": rule,
                                                    "weight": float(weight), "ablation": bool(ablation), **extra})


def load_member(embed_dir: str | os.PathLike[str], split: str = "test") -> Member:
    """Load one configuration's embeddings of ``split`` (``test``, ``val`` or ``train``, gallery only)."""
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be one of {sorted(SPLIT_FILES)}, got {split!r}")
    d = Path(embed_dir)
    m = read_manifest(d)
    gfile, qfile = SPLIT_FILES[split]
    return Member(name=m["name"], rule=m["rule"], weight=float(m["weight"]), gallery=load_gallery_embeddings(d / gfile),
                  queries=load_query_embeddings(d / qfile) if qfile else None, ablation=bool(m.get("ablation", False)),
                  source=str(d), val_is_training_fit=bool(m.get("val_is_training_fit", False)))


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


