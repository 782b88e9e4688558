"""Bootstrap intervals and paired tests over queries (lib.ensemble.stats)."""

from __future__ import annotations

import numpy as np
import pytest

from lib.ensemble import stats


def test_per_query_means_are_the_metrics() -> None:
    ranks = np.array([0, 1, 4, 9, 20])
    pq = stats.per_query(ranks)
    assert pq["mrr"].mean() == pytest.approx(np.mean([1, 1 / 2, 1 / 5, 1 / 10, 1 / 21]))
    assert pq["recall_1"].tolist() == [1, 0, 0, 0, 0] and pq["recall_5"].sum() == 3 and pq["recall_10"].sum() == 4


def test_interval_contains_the_mean_shrinks_with_n_and_is_reproducible() -> None:
    rng = np.random.default_rng(0)
    small, large = rng.random(50), rng.random(800)
    lo, hi = stats.bootstrap_interval(small)
    assert lo < small.mean() < hi
    lo2, hi2 = stats.bootstrap_interval(large)
    assert hi2 - lo2 < (hi - lo) / 2  # about 1/sqrt(16) of the width
    assert stats.bootstrap_interval(small) == (lo, hi)
    assert stats.bootstrap_interval(np.ones(10)) == (1.0, 1.0)


def test_paired_test_sees_a_small_consistent_gain_that_unpaired_intervals_miss() -> None:
    rng = np.random.default_rng(1)
    b = rng.random(300)
    a = np.clip(b + 0.03 + 0.02 * rng.normal(size=300), 0, 1)  # +0.03 on every query, small noise
    t = stats.paired_test(a, b, "A", "B")
    assert t.significant and t.p_a_better < 0.01 and t.diff_ci[0] > 0
    lo_a, _ = stats.bootstrap_interval(a)
    _, hi_b = stats.bootstrap_interval(b)
    assert lo_a < hi_b  # the unpaired intervals overlap
    rev = stats.paired_test(b, a, "B", "A")
    assert not rev.significant and rev.p_a_better > 0.95


def test_paired_test_of_equal_systems_is_not_significant() -> None:
    rng = np.random.default_rng(2)
    a = rng.random(300)
    t = stats.paired_test(a, rng.permutation(a))
    assert t.diff == pytest.approx(0.0) and not t.significant
    with pytest.raises(ValueError, match="same queries"):
        stats.paired_test(a, a[:10])


def test_paired_mrr_on_a_subset() -> None:
    ranks = {"a": np.array([0, 0, 5, 5]), "b": np.array([5, 5, 0, 0])}
    mask = np.array([True, True, False, False])
    t = stats.paired_mrr(ranks, "a", "b", mask, subset="first two")
    assert t.n == 2 and t.mean_a == 1.0 and t.subset == "first two"
