"""The report: summary.json / summary.md with every row, query kinds and figures (synthetic embeddings)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lib.ensemble import report
from lib.ensemble.rerank import AttributeLabels
from lib.ensemble.run import run_ensemble
from tests.helpers.fake_embeddings import MemberSpec, keyword_parser, make_world

MEMBERS = [MemberSpec("p1_a", "dual_stream", 4.0, 3.0), MemberSpec("p2_a", "instance", 1.0, 3.3),
           MemberSpec("crop_only", "dual_stream", 1.0, 3.9, ablation=True)]


def test_query_kind_is_the_most_unusual_stated_value() -> None:
    common = AttributeLabels(colours=("red",), vtype="sedan", manoeuvre="straight")
    others = [AttributeLabels(colours=(c,), vtype="sedan", manoeuvre="straight") for c in ("blue", "white", "black")]
    turn = AttributeLabels(colours=("red",), vtype="sedan", manoeuvre="left")
    maroon = AttributeLabels(colours=("maroon",), vtype="sedan", manoeuvre="straight")
    bus = AttributeLabels(colours=("red",), vtype="bus", manoeuvre="straight")
    pool = [common] * 6 + others * 2 + [turn, maroon, bus, AttributeLabels(colours=("red",)), AttributeLabels()]
    kinds = report.query_kinds(pool)
    assert kinds[-5:] == ["manoeuvre", "colour", "type", "colour", "other"]
    assert kinds[0] == "manoeuvre"  # red / sedan / straight: straight is the least over-represented (tie order)


def test_pick_examples_is_deterministic_and_covers_hits_and_misses() -> None:
    ranks = np.array([0, 0, 3, 50, 7, 0, 99])
    picks = report.pick_examples(ranks, 3, seed=1)
    assert picks == report.pick_examples(ranks, 3, seed=1)
    assert ranks[picks[0]] == 0 and 1 <= ranks[picks[1]] < 10 and ranks[picks[2]] >= 10


def test_build_report_writes_summary_and_figures(tmp_path) -> None:
    w = make_world(tmp_path, MEMBERS, write_frames=True)
    res = run_ensemble(w["embed_dirs"], tmp_path / "ens", data_root=w["data_root"], prep_dir=w["prep_dir"],
                       parser=keyword_parser)
    # a training metrics file for one configuration, as lib.train writes it
    (w["runs_dir"] / "train" / "p1_a").mkdir(parents=True)
    (w["runs_dir"] / "train" / "p1_a" / "metrics.json").write_text(json.dumps({"val_mrr": 0.5, "train_time_s": 3.0}))
    out = tmp_path / "report"
    s = report.build_report(res, out, data_root=w["data_root"], runs_dir=w["runs_dir"], title="unit test",
                            parser=keyword_parser)
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["table"] == json.loads(json.dumps(s["table"]))
    kinds = {r["kind"] for r in s["table"]}
    assert kinds == {"configuration", "ablation", "ensemble", "random"}
    names = [r["name"] for r in s["table"]]
    assert "crop_only" in names and "random ranking" in names
    assert "ensemble, weights fitted on val + attribute re-rank" in names
    p1 = next(r for r in s["table"] if r["name"] == "p1_a")
    assert p1["train_val_mrr"] == 0.5 and p1["weight"] == 4.0
    assert p1["mrr"] == pytest.approx(res.config_metrics["p1_a"]["test"]["mrr"])
    assert sum(s["query_kinds"]["counts"].values()) == len(w["query_ids"])
    assert s["query_kinds"]["counts"]["other"] == 0 and max(s["query_kinds"]["counts"].values()) < len(w["query_ids"])
    assert s["checks"]["weakest_model_over_random"] > 1
    md = (out / "summary.md").read_text()
    assert "| p1_a | configuration | 4.00 | 0.5000 |" in md
    assert "MRR per query kind" in md and "rank_histogram.png" in md and "retrieval_gallery.png" in md
    assert s["git_commit"] in md
    for fig in ("rank_histogram.png", "retrieval_gallery.png", "attribute_confusions.png", "worst_queries.png"):
        assert (out / fig).stat().st_size > 5000
    # intervals on every scored row, contained around their value; oracle rows; paired tests; failures
    for r in s["table"]:
        if r["kind"] in ("configuration", "ablation", "ensemble"):
            for m in report.TABLE_METRICS:
                lo, hi = r["ci95"][m]
                assert lo <= r[m] <= hi
    assert [r["name"] for r in s["oracles"]] == ["oracle: true colour + type + manoeuvre", "oracle: true colour + type"]
    full, ct = s["oracles"]
    assert ct["mrr"] <= full["mrr"] <= 1.0 and full["recall_10"] >= full["recall_1"]
    assert "oracle: true colour + type + manoeuvre | oracle" in md and "[95 % CI]" in md
    labels = [t["label"] for t in s["paired_tests"]]
    assert "ensemble, published weights vs best single model" in labels
    assert {"p_a_better", "diff_ci", "significant"} <= set(s["paired_tests"][0])
    assert "## Paired tests" in md and "p = " in md
    f = s["failures"]
    assert len(f["worst"]) == 10 and f["worst"][0]["rank"] >= f["worst"][-1]["rank"]
    assert f["worst"][0]["target_truth"] and set(f["confusions"]) == {"colour", "type", "manoeuvre"}
    conf = f["confusions"]["type"]
    assert sum(map(sum, conf["counts"])) == len(w["query_ids"])  # every test track read once
    assert "## Where the models fail" in md and "worst test queries" in md
