"""Attribute re-rank (the 2023 winner's idea): tracks whose predicted attributes match the query's move ahead.

1. The query's colour(s), vehicle type and manoeuvre (straight / left / right / stop) are parsed from its sentences
   (``lib.text.attributes.parse_track``).
2. A track's attributes are predicted by light classifiers (scikit-learn logistic regressions) on its gallery
   embeddings (the members' L2-normalised gallery features, concatenated). They are trained on the *training*
   tracks' embeddings, with labels = the parser's output on the training tracks' own descriptions (no other truth).
3. Re-rank, lexicographically per query: first the number of matched primary attributes (colour, type), then whether
   the manoeuvre matches, then the original ensemble order. An attribute the query does not state matches every
   track. A track "matches" when the classifier gives the query's value a probability >= ``min_prob`` (for several
   query colours: their summed probability). With ``top_k`` only the first ``top_k`` tracks of the original ranking
   are re-ordered (the rest keep their order below them).

The result is a new score matrix, so evaluation and the submission use the same code as the plain ensemble.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lib.metrics import rank_order

ATTRIBUTES = ("colour", "type", "manoeuvre")


@dataclasses.dataclass(frozen=True)
class AttributeLabels:
    """What a description states about its vehicle (``None`` / empty = not stated)."""

    colours: tuple[str, ...] = ()
    vtype: str | None = None
    manoeuvre: str | None = None

    def label(self, attr: str) -> str | None:
        """The single training label of an attribute (the first, i.e. dominant, colour)."""
        if attr == "colour":
            return self.colours[0] if self.colours else None
        if attr == "type":
            return self.vtype
        if attr == "manoeuvre":
            return self.manoeuvre
        raise KeyError(f"unknown attribute {attr!r}; known: {ATTRIBUTES}")

    def query_values(self, attr: str) -> tuple[str, ...]:
        if attr == "colour":
            return self.colours
        v = self.label(attr)
        return () if v is None else (v,)


def from_parsed(parsed: Any) -> AttributeLabels:
    """Convert the result of ``lib.text.attributes.parse_track`` into :class:`AttributeLabels`."""
    colours = tuple(getattr(parsed, "colours", ()) or ())
    return AttributeLabels(colours=colours, vtype=getattr(parsed, "vehicle_type", None),
                      manoeuvre=getattr(parsed, "manoeuvre", None))


def default_parser() -> Callable[[Sequence[str]], AttributeLabels]:
    from lib.text.attributes import parse_track

    return lambda sentences: from_parsed(parse_track(list(sentences)))


def parse_all(sentences_per_item: Sequence[Sequence[str]],
              parser: Callable[[Sequence[str]], AttributeLabels] | None = None) -> list[AttributeLabels]:
    parse = parser or default_parser()
    return [parse(s) for s in sentences_per_item]


def classifier_features(galleries: Sequence[np.ndarray]) -> np.ndarray:
    """Concatenate the members' L2-normalised gallery features (all aligned to the same tracks)."""
    parts = [g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12) for g in galleries]
    return np.concatenate(parts, axis=1).astype(np.float32)


@dataclasses.dataclass
class AttributePredictions:
    """Per attribute: class names and probabilities [N, K] for N tracks (``None`` when no classifier)."""

    classes: dict[str, list[str]]
    probs: dict[str, np.ndarray]

    def argmax(self, attr: str) -> list[str]:
        return [self.classes[attr][i] for i in self.probs[attr].argmax(1)]


class AttributeClassifiers:
    """One standardised logistic regression per attribute, fit on training-track embeddings and parsed labels."""

    def __init__(self, c: float = 1.0, max_iter: int = 2000) -> None:
        self.c = c
        self.max_iter = max_iter
        self.models: dict[str, Any] = {}
        self.constant: dict[str, str] = {}
        self.train_counts: dict[str, dict[str, int]] = {}

    def fit(self, features: np.ndarray, labels: Sequence[AttributeLabels]) -> AttributeClassifiers:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if len(features) != len(labels):
            raise ValueError(f"{len(features)} feature rows but {len(labels)} label sets")
        for attr in ATTRIBUTES:
            y = [lab.label(attr) for lab in labels]
            keep = np.array([v is not None for v in y])
            ys = [v for v in y if v is not None]
            self.train_counts[attr] = {c: ys.count(c) for c in sorted(set(ys))}
            if not ys:
                continue
            if len(set(ys)) == 1:
                self.constant[attr] = ys[0]
                continue
            model = make_pipeline(StandardScaler(), LogisticRegression(C=self.c, max_iter=self.max_iter))
            model.fit(features[keep], np.asarray(ys))
            self.models[attr] = model
        return self

    def predict(self, features: np.ndarray) -> AttributePredictions:
        classes: dict[str, list[str]] = {}
        probs: dict[str, np.ndarray] = {}
        for attr in ATTRIBUTES:
            if attr in self.models:
                m = self.models[attr]
                classes[attr] = [str(c) for c in m.classes_]
                probs[attr] = m.predict_proba(features).astype(np.float32)
            elif attr in self.constant:
                classes[attr] = [self.constant[attr]]
                probs[attr] = np.ones((len(features), 1), dtype=np.float32)
        return AttributePredictions(classes, probs)


def match_matrix(queries: Sequence[AttributeLabels], preds: AttributePredictions, attr: str, min_prob: float
                 ) -> np.ndarray:
    """[Q, N] bool: does track n carry (with probability >= min_prob) a value query q states? Unstated -> True."""
    n = next(iter(preds.probs.values())).shape[0] if preds.probs else 0
    out = np.ones((len(queries), n), dtype=bool)
    if attr not in preds.probs:
        return out
    col = {c: i for i, c in enumerate(preds.classes[attr])}
    p = preds.probs[attr]
    for qi, qa in enumerate(queries):
        vals = qa.query_values(attr)
        if not vals:
            continue
        idx = [col[v] for v in vals if v in col]
        out[qi] = (p[:, idx].sum(1) >= min_prob) if idx else False
    return out


def rerank_scores(scores: np.ndarray, queries: Sequence[AttributeLabels], preds: AttributePredictions,
                  min_prob: float = 0.3, top_k: int | None = None) -> np.ndarray:
    """Scores whose descending order is the re-ranked order (see the module docstring)."""
    q, n = scores.shape
    if len(queries) != q:
        raise ValueError(f"{q} score rows but {len(queries)} parsed queries")
    order = rank_order(scores)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(n)[None, :].repeat(q, 0), axis=1)
    base = 1.0 - rank / n  # in (0, 1], keeps the original order inside a tier
    primary = (match_matrix(queries, preds, "colour", min_prob).astype(np.float64)
               + match_matrix(queries, preds, "type", min_prob))
    manoeuvre = match_matrix(queries, preds, "manoeuvre", min_prob).astype(np.float64)
    key = primary * 4.0 + manoeuvre * 2.0 + base  # primary dominates manoeuvre, which dominates the base order
    if top_k is not None and top_k < n:
        key = np.where(rank < top_k, key + 16.0, base)
    return key
