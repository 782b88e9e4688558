"""Where the models fail (lib.ensemble.failures): confusions, near pairs, worst queries, the figure."""

from __future__ import annotations

import numpy as np

from lib.ensemble import failures


def test_confusion_and_near_pairs() -> None:
    truth = ["silver", "silver", "silver", "white", "gray", "gray"]
    pred = ["white", "white", "silver", "white", "white", "gray"]
    conf = failures.confusion(truth, pred)
    assert conf["labels"] == ["gray", "silver", "white"]
    assert conf["counts"] == [[1, 0, 1], [0, 1, 2], [0, 0, 1]]
    pairs = failures.near_pairs(conf, 5)
    assert pairs[0] == {"true": "silver", "predicted": "white", "count": 2, "share_of_true": 2 / 3}
    assert len(pairs) == 2


def test_worst_queries_order() -> None:
    assert failures.worst_queries(np.array([3, 50, 0, 50, 7]), 3) == [1, 3, 4]


def test_confusion_figure(tmp_path) -> None:
    conf = {"type": failures.confusion(["sedan", "suv", "suv"], ["suv", "suv", "sedan"]),
            "manoeuvre": failures.confusion(["left", "right"], ["left", "left"])}
    out = failures.confusion_figure(conf, tmp_path / "c.png")
    assert out.stat().st_size > 3000
