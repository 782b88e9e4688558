"""Intervals and paired tests over queries, so that a table of MRRs says which differences are real.

- :func:`per_query` — each query's reciprocal rank and hits at 1 / 5 / 10 from its 0-based rank (the metrics of
  :mod:`lib.metrics` are their means);
- :func:`bootstrap_interval` — a percentile bootstrap 95 % interval of a mean over queries (``scipy.stats.bootstrap``,
  2,000 resamples, fixed seed: the same numbers every run);
- :func:`paired_test` — a paired bootstrap of "A beats B" on the same queries: the mean difference, its 95 %
  interval and the one-sided p-value (the share of resampled mean differences <= 0, with the +1 correction so it is
  never 0). p < 0.05 reads "A is better than B beyond query-sampling noise".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

METRICS = ("mrr", "recall_1", "recall_5", "recall_10")
N_RESAMPLES = 2000
N_RESAMPLES_PAIRED = 10000
CONFIDENCE = 0.95


def per_query(ranks: np.ndarray) -> dict[str, np.ndarray]:
    """``{metric: [Q] values}`` from 0-based ranks (``mrr`` = reciprocal rank, ``recall_k`` = hit at k)."""
    r = np.asarray(ranks, dtype=np.float64)
    return {"mrr": 1.0 / (r + 1.0), "recall_1": (r < 1).astype(np.float64), "recall_5": (r < 5).astype(np.float64),
            "recall_10": (r < 10).astype(np.float64)}


def bootstrap_interval(values: np.ndarray, seed: int = 0, n_resamples: int = N_RESAMPLES) -> tuple[float, float]:
    """Percentile bootstrap interval (:data:`CONFIDENCE`) of ``values.mean()``; a constant sample gives its value."""
    from scipy.stats import bootstrap

    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return float("nan"), float("nan")
    if np.all(x == x[0]):
        return float(x[0]), float(x[0])
    res = bootstrap((x,), np.mean, n_resamples=n_resamples, confidence_level=CONFIDENCE, method="percentile",
                    vectorized=True, random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def intervals(ranks: np.ndarray, seed: int = 0) -> dict[str, tuple[float, float]]:
    """:func:`bootstrap_interval` of every metric of :data:`METRICS`."""
    return {m: bootstrap_interval(v, seed) for m, v in per_query(ranks).items()}


@dataclasses.dataclass(frozen=True)
class PairedTest:
    a: str
    b: str
    metric: str
    n: int
    mean_a: float
    mean_b: float
    diff: float
    diff_ci: tuple[float, float]
    p_a_better: float
    subset: str = "all queries"

    @property
    def significant(self) -> bool:
        return self.p_a_better < 0.05

    def to_dict(self) -> dict[str, object]:
        return {**dataclasses.asdict(self), "significant": self.significant}


def paired_test(a: np.ndarray, b: np.ndarray, name_a: str = "A", name_b: str = "B", metric: str = "mrr",
                seed: int = 0, n_resamples: int = N_RESAMPLES_PAIRED, subset: str = "all queries") -> PairedTest:
    """Paired bootstrap of ``mean(a) - mean(b)`` over the same queries (see the module docstring)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired test {name_a} vs {name_b}: {x.shape} and {y.shape} values (must be the same "
                         "queries)")
    d = x - y
    if d.size == 0:
        nan = float("nan")
        return PairedTest(name_a, name_b, metric, 0, nan, nan, nan, (nan, nan), nan, subset)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, d.size, size=(n_resamples, d.size))
    means = d[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - CONFIDENCE) / 2, 1 - (1 - CONFIDENCE) / 2])
    p = (1.0 + float(np.sum(means <= 0))) / (n_resamples + 1.0)
    return PairedTest(name_a, name_b, metric, int(d.size), float(x.mean()), float(y.mean()), float(d.mean()),
                      (float(lo), float(hi)), p, subset)


def paired_mrr(ranks: Mapping[str, np.ndarray], a: str, b: str, mask: np.ndarray | None = None,
               subset: str = "all queries", seed: int = 0) -> PairedTest:
    """:func:`paired_test` of the reciprocal ranks of ``a`` and ``b`` (``mask`` selects a subset of queries)."""
    ra, rb = per_query(ranks[a])["mrr"], per_query(ranks[b])["mrr"]
    if mask is not None:
        ra, rb = ra[mask], rb[mask]
    return paired_test(ra, rb, a, b, "mrr", seed=seed, subset=subset)
