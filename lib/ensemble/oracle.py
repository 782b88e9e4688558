"""The ceiling of the synthetic benchmark: rank by the true attributes of the described vehicle.

An oracle knows, for every test query, the generator's truth about its target track (``synthetic-labels.json``) and
ranks the gallery by agreement with it: the tracks that share the target's values of the chosen attributes tie at
the top, in random order. With ``k`` such tracks (the target included) the expected reciprocal rank is
``H_k / k`` and the expected hit at ``K`` is ``min(K, k) / k``; these expectations are the oracle's per-query values
(exact, no random draw). Two oracles are reported:

- **colour + type + manoeuvre** — everything a sentence of the synthetic data states about the vehicle itself; what
  it cannot separate (two white sedans that both go straight) only the context words could;
- **colour + type** — what a model that reads appearance but not motion could reach at best.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lib.io import read_json

ORACLES: dict[str, tuple[str, ...]] = {
    "oracle: true colour + type + manoeuvre": ("colour", "type", "manoeuvre"),
    "oracle: true colour + type": ("colour", "type"),
}
LABELS_FILE = "synthetic-labels.json"


def expected_metrics(k: np.ndarray) -> dict[str, np.ndarray]:
    """Per-query expected reciprocal rank and hits at 1 / 5 / 10 for a target tied with ``k - 1`` others."""
    k = np.asarray(k, dtype=np.int64)
    harmonic = np.cumsum(1.0 / np.arange(1, int(k.max(initial=1)) + 1))
    return {"mrr": harmonic[k - 1] / k, "recall_1": 1.0 / k, "recall_5": np.minimum(5, k) / k,
            "recall_10": np.minimum(10, k) / k}


def tie_counts(truth: Mapping[str, Mapping[str, Any]], gallery_ids: Sequence[str], targets: Sequence[str],
               attrs: Sequence[str]) -> np.ndarray:
    """For each target track, how many gallery tracks (itself included) share its values of ``attrs``."""
    missing = [g for g in gallery_ids if g not in truth]
    if missing:
        raise KeyError(f"{LABELS_FILE}: no truth for test tracks {missing[:3]}")
    key = {g: tuple(str(truth[g].get(a)) for a in attrs) for g in gallery_ids}
    counts = Counter(key.values())
    return np.array([counts[key[t]] for t in targets], dtype=np.int64)


def oracle_values(data_root: str | Path, query_ids: Sequence[str], gallery_ids: Sequence[str],
                  target_index: np.ndarray) -> dict[str, dict[str, np.ndarray]] | None:
    """``{oracle name: {metric: [Q] expected values}}``, or None when the dataset has no synthetic truth."""
    path = Path(data_root) / LABELS_FILE
    if not path.exists():
        return None
    truth = read_json(path)
    targets = [gallery_ids[int(i)] for i in target_index]
    return {name: expected_metrics(tie_counts(truth, gallery_ids, targets, attrs))
            for name, attrs in ORACLES.items()}
