"""Where the models fail: the attribute read-out's confusions and the worst queries.

- :func:`confusion` — a truth x prediction count matrix of one attribute (the re-rank's classifiers on the test
  tracks' embeddings against the synthetic generator's truth); :func:`near_pairs` its most frequent off-diagonal
  cells (for the colours: which near colours the embeddings mix up); :func:`confusion_figure` draws the three;
- :func:`worst_queries` — the queries whose true track ranks lowest, for the report's table and its gallery of their
  top 5 (``lib.ensemble.report.retrieval_gallery`` with these picks).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lib.io import save_figure


def confusion(truth: Sequence[str], pred: Sequence[str]) -> dict[str, Any]:
    """``{"labels": [...], "counts": [[...]]}``: rows the true value, columns the predicted one."""
    labels = sorted(set(truth) | set(pred))
    pos = {v: i for i, v in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(truth, pred):
        counts[pos[t], pos[p]] += 1
    return {"labels": labels, "counts": counts.tolist()}


def near_pairs(conf: Mapping[str, Any], n: int = 5) -> list[dict[str, Any]]:
    """The ``n`` most frequent confusions (true -> predicted), with their share of the true value's tracks."""
    counts = np.asarray(conf["counts"])
    labels = conf["labels"]
    cells = [(int(counts[i, j]), i, j) for i in range(len(labels)) for j in range(len(labels))
             if i != j and counts[i, j] > 0]
    cells.sort(key=lambda c: (-c[0], c[1], c[2]))
    return [{"true": labels[i], "predicted": labels[j], "count": c,
             "share_of_true": c / max(1, int(counts[i].sum()))} for c, i, j in cells[:n]]


def confusion_figure(confusions: Mapping[str, Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    from matplotlib.figure import Figure

    attrs = list(confusions)
    fig = Figure(figsize=(4.6 * len(attrs), 5.0))
    axes = np.atleast_1d(fig.subplots(1, len(attrs)))
    for ax, attr in zip(axes, attrs):
        counts = np.asarray(confusions[attr]["counts"], dtype=np.float64)
        labels = confusions[attr]["labels"]
        share = counts / np.maximum(1.0, counts.sum(1, keepdims=True))
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(labels)):
            for j in range(len(labels)):
                if counts[i, j]:
                    ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=7,
                            color="white" if share[i, j] > 0.5 else "black")
        ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        acc = np.trace(counts) / max(1.0, counts.sum())
        ax.set_title(f"{attr}: {acc:.0%} read correctly", fontsize=10)
        ax.set_xlabel("read from the embeddings", fontsize=9)
        ax.set_ylabel("true (generator)", fontsize=9)
    fig.suptitle("Attribute read-out on the test tracks (counts; colour = share of the true row)", fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 0.94))  # room for the rotated labels and the axis title below
    return save_figure(fig, path, dpi=100)


def worst_queries(ranks: np.ndarray, n: int = 10) -> list[int]:
    """Indices of the ``n`` queries with the lowest-ranked true track (worst first; ties by query order)."""
    r = np.asarray(ranks)
    return [int(i) for i in np.lexsort((np.arange(len(r)), -r))[:n]]
