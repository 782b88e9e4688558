"""The attribute oracle (lib.ensemble.oracle): expected metrics under random tie order."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lib.ensemble import oracle


def test_expected_metrics_match_a_simulation() -> None:
    k = np.array([1, 2, 7, 30])
    exp = oracle.expected_metrics(k)
    rng = np.random.default_rng(0)
    for i, ki in enumerate(k):
        ranks = np.array([rng.permutation(ki).tolist().index(0) for _ in range(20000)])
        assert exp["mrr"][i] == pytest.approx(np.mean(1 / (ranks + 1)), abs=0.01)
        assert exp["recall_5"][i] == pytest.approx(np.mean(ranks < 5), abs=0.01)
    assert exp["mrr"][0] == 1.0 and exp["recall_1"][1] == 0.5 and exp["recall_10"][2] == 1.0


def test_oracle_values_from_synthetic_labels(tmp_path) -> None:
    truth = {"t1": {"colour": "red", "type": "sedan", "manoeuvre": "left"},
             "t2": {"colour": "red", "type": "sedan", "manoeuvre": "straight"},
             "t3": {"colour": "blue", "type": "suv", "manoeuvre": "left"}}
    (tmp_path / "synthetic-labels.json").write_text(json.dumps(truth))
    vals = oracle.oracle_values(tmp_path, ["q1", "q2", "q3"], ["t1", "t2", "t3"], np.array([0, 1, 2]))
    assert vals is not None
    full = vals["oracle: true colour + type + manoeuvre"]["mrr"]
    ct = vals["oracle: true colour + type"]["mrr"]
    assert full.tolist() == [1.0, 1.0, 1.0] and ct.tolist() == [0.75, 0.75, 1.0]
    assert oracle.oracle_values(tmp_path / "none", [], [], np.array([])) is None
    with pytest.raises(KeyError, match="t9"):
        oracle.oracle_values(tmp_path, ["q"], ["t9"], np.array([0]))
