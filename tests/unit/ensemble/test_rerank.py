"""The attribute re-rank: tiers, unstated attributes, top-k, and the classifiers."""

from __future__ import annotations

import numpy as np
import pytest

from lib.ensemble.rerank import AttributeClassifiers, AttributeLabels, AttributePredictions, match_matrix, rerank_scores
from lib.metrics import rank_order


def _preds() -> AttributePredictions:
    # 4 tracks: colours red, red, blue, blue; types sedan, suv, sedan, suv; manoeuvres left, right, left, right
    return AttributePredictions(
        classes={"colour": ["blue", "red"], "type": ["sedan", "suv"], "manoeuvre": ["left", "right"]},
        probs={"colour": np.array([[0.1, 0.9], [0.2, 0.8], [0.9, 0.1], [0.7, 0.3]], np.float32),
               "type": np.array([[0.9, 0.1], [0.1, 0.9], [0.8, 0.2], [0.2, 0.8]], np.float32),
               "manoeuvre": np.array([[0.9, 0.1], [0.1, 0.9], [0.9, 0.1], [0.1, 0.9]], np.float32)})


def test_colour_and_type_first_then_manoeuvre_then_original_order() -> None:
    scores = np.array([[0.1, 0.2, 0.3, 0.4]])  # original order: 3, 2, 1, 0
    q = [AttributeLabels(colours=("red",), vtype="suv", manoeuvre="left")]
    new = rank_order(rerank_scores(scores, q, _preds(), min_prob=0.5))[0]
    # track 1: red suv (2 primary, right); track 0: red sedan (1, left); track 3: blue suv (1, right);
    # track 2: blue sedan (0, left)
    assert new.tolist() == [1, 0, 3, 2]


def test_unstated_attributes_keep_the_original_order() -> None:
    scores = np.array([[0.1, 0.2, 0.3, 0.4]])
    new = rank_order(rerank_scores(scores, [AttributeLabels()], _preds()))[0]
    assert new.tolist() == rank_order(scores)[0].tolist()


def test_several_query_colours_sum_their_probabilities() -> None:
    m = match_matrix([AttributeLabels(colours=("red", "blue"))], _preds(), "colour", 0.95)
    assert m.all()
    m = match_matrix([AttributeLabels(colours=("green",))], _preds(), "colour", 0.1)
    assert not m.any()  # a colour no classifier knows matches nothing


def test_top_k_reorders_only_the_head() -> None:
    scores = np.array([[0.1, 0.2, 0.3, 0.4]])  # order 3, 2, 1, 0
    q = [AttributeLabels(colours=("red",), vtype="suv")]
    new = rank_order(rerank_scores(scores, q, _preds(), min_prob=0.5, top_k=2))[0]
    assert new.tolist() == [3, 2, 1, 0]  # among {3, 2}: 3 is blue suv (1 match), 2 blue sedan (0)
    new = rank_order(rerank_scores(scores, q, _preds(), min_prob=0.5, top_k=3))[0]
    assert new.tolist() == [1, 3, 2, 0]


def test_classifiers_learn_separable_attributes_and_handle_constant_labels() -> None:
    rng = np.random.default_rng(0)
    n = 120
    col = rng.integers(0, 3, n)
    feats = rng.normal(size=(n, 6)).astype(np.float32)
    feats[:, 0] += 4 * col
    labels = [AttributeLabels(colours=(("red", "blue", "white")[c],), vtype="sedan", manoeuvre=None) for c in col]
    clf = AttributeClassifiers().fit(feats, labels)
    pred = clf.predict(feats)
    acc = np.mean([p == ("red", "blue", "white")[c] for p, c in zip(pred.argmax("colour"), col)])
    assert acc > 0.9
    assert pred.classes["type"] == ["sedan"] and np.allclose(pred.probs["type"], 1)
    assert "manoeuvre" not in pred.probs  # never stated: no classifier, matches everything
    assert match_matrix([AttributeLabels(manoeuvre="left")], pred, "manoeuvre", 0.5).all()


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="parsed queries"):
        rerank_scores(np.zeros((2, 4)), [AttributeLabels()], _preds())
