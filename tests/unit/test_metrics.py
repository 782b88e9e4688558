"""lib.metrics equals the official CityFlow-NL rule, on random (also truncated) submissions and score matrices."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lib import metrics


def official_evaluate(gt: dict[str, str], results: dict[str, list[str]]) -> dict[str, float]:
    """The challenge's evaluation loop, written out literally (0-based rank, 100 when absent)."""
    recall_5 = recall_10 = 0
    mrr = 0.0
    for query in gt:
        result = results[query]
        target = gt[query]
        try:
            rank = result.index(target)
        except ValueError:
            rank = 100
        if rank < 10:
            recall_10 += 1
        if rank < 5:
            recall_5 += 1
        mrr += 1.0 / (rank + 1)
    n = len(gt)
    return {"mrr": mrr / n, "recall_5": recall_5 / n, "recall_10": recall_10 / n}


def random_submission(rng: np.random.Generator, n_q: int, n_t: int, truncate: bool
                      ) -> tuple[dict[str, str], dict[str, list[str]]]:
    tracks = [f"t{i:04d}" for i in range(n_t)]
    gt, res = {}, {}
    for q in range(n_q):
        qid = f"q{q:04d}"
        gt[qid] = tracks[rng.integers(n_t)]
        order = [tracks[i] for i in rng.permutation(n_t)]
        if truncate:
            order = order[: int(rng.integers(0, n_t + 1))]
        res[qid] = order
    return gt, res


@pytest.mark.parametrize("truncate", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_equals_official_rule_on_random_submissions(seed: int, truncate: bool) -> None:
    rng = np.random.default_rng(seed)
    gt, res = random_submission(rng, n_q=60, n_t=150 if not truncate else 40, truncate=truncate)
    ours = metrics.evaluate_submission(gt, res)
    ref = official_evaluate(gt, res)
    for k, v in ref.items():
        assert ours[k] == pytest.approx(v, abs=1e-12), k
    if truncate:
        # truncated lists do leave targets out: the rank-100 branch is exercised
        assert any(metrics.official_rank(gt[q], res[q]) == 100 for q in gt)


def test_absent_target_counts_as_rank_100_even_past_100_entries() -> None:
    ranked = [f"t{i}" for i in range(300)]
    assert metrics.official_rank("t250", ranked) == 250
    assert metrics.official_rank("nope", ranked) == 100
    m = metrics.summarize_ranks([100])
    assert m["mrr"] == pytest.approx(1 / 101)
    assert m["recall_25"] == 0.0


def test_missing_query_is_an_error_naming_it() -> None:
    with pytest.raises(KeyError, match="q2"):
        metrics.submission_ranks({"q1": "a", "q2": "b"}, {"q1": ["a", "b"]}, source="sub.json")


def test_ranks_from_scores_match_the_submission_order() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(30, 50)).astype(np.float32)
    scores[:, 7] = scores[:, 3]  # ties resolve in gallery order, like the written submission
    tgt = rng.integers(0, 50, size=30)
    ranks = metrics.ranks_from_scores(scores, tgt)
    order = metrics.rank_order(scores)
    for q in range(30):
        assert list(order[q]).index(tgt[q]) == ranks[q]
    qids = [f"q{i}" for i in range(30)]
    gids = [f"g{i}" for i in range(50)]
    gt = {qids[i]: gids[tgt[i]] for i in range(30)}
    m, _ = metrics.evaluate_scores(scores, qids, gids, gt)
    sub = {qids[i]: [gids[j] for j in order[i]] for i in range(30)}
    assert m == metrics.evaluate_submission(gt, sub)


def test_random_ranking_is_near_its_expectation() -> None:
    m = metrics.random_ranking_metrics(500, 100, seed=1)
    assert m["mrr"] == pytest.approx(metrics.expected_random_mrr(100), rel=0.1)


def test_cli_prints_one_json_object_last(tmp_path, capsys) -> None:
    gt = {"q1": "a", "q2": "b", "q3": "c"}
    res = {"q1": ["a", "b", "c"], "q2": ["a", "c", "b"], "q3": ["a"]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(res))
    assert metrics.main([str(tmp_path / "gt.json"), str(tmp_path / "res.json"),
                         "--per-query", str(tmp_path / "ranks.json")]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    out = json.loads(last)
    assert out["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 101) / 3)
    assert out["recall_1"] == pytest.approx(1 / 3)
    assert out["recall_5"] == pytest.approx(2 / 3)
    assert json.loads((tmp_path / "ranks.json").read_text()) == {"q1": 0, "q2": 2, "q3": 100}


def test_rank_order_equals_a_stable_sort_with_and_without_ties() -> None:
    rng = np.random.default_rng(3)
    s = rng.normal(size=(40, 300)).astype(np.float32)
    s[::3, 10:20] = 0.5  # tied rows
    s[5] = 1.0  # a fully tied row
    np.testing.assert_array_equal(metrics.rank_order(s), np.argsort(-s, axis=1, kind="stable"))
