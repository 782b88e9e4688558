"""Scores, the published ensemble, fitted weights and the submission (synthetic embeddings, no model)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lib import embeddings, metrics
from lib.ensemble import scores as ensemble
from lib.ensemble.run import main as run_main
from lib.ensemble.run import run_ensemble
from tests.helpers.fake_embeddings import MemberSpec, keyword_parser, make_world

MEMBERS = [MemberSpec("p1_a", "dual_stream", 4.0, 3.0), MemberSpec("p1_b", "dual_stream", 1.0, 3.6),
           MemberSpec("p2_a", "instance", 1.0, 3.3), MemberSpec("crop_only", "dual_stream", 1.0, 3.9, ablation=True)]


def _member(rule: str, q: np.ndarray, g: np.ndarray, n: np.ndarray | None = None) -> embeddings.Member:
    nq = np.full(q.shape[0], q.shape[1]) if n is None else n
    return embeddings.Member("m", rule, 1.0, embeddings.Gallery([f"g{i}" for i in range(len(g))], g),
                           embeddings.Queries([f"q{i}" for i in range(len(q))], q, nq))


def test_part_one_score_is_the_mean_over_sentences_of_q_dot_g_with_padding_ignored() -> None:
    rng = np.random.default_rng(0)
    q = rng.normal(size=(5, 4, 8)).astype(np.float32)
    q /= np.linalg.norm(q, axis=2, keepdims=True)
    n = np.array([4, 3, 4, 1, 2])
    for i, k in enumerate(n):
        q[i, k:] = 0
    g = rng.normal(size=(7, 8)).astype(np.float32)  # a mean of frames: not normalised
    s = embeddings.score_matrix(_member("mean_dot", q, g, n))
    ref = np.array([[np.mean([q[i, j] @ g[t] for j in range(n[i])]) for t in range(7)] for i in range(5)])
    np.testing.assert_allclose(s, ref, rtol=1e-5, atol=1e-6)


def test_part_two_score_is_the_cosine_of_normalised_sum_and_normalised_gallery() -> None:
    rng = np.random.default_rng(1)
    q = rng.normal(size=(4, 3, 8)).astype(np.float32)
    g = rng.normal(size=(6, 8)).astype(np.float32) * 3
    s = embeddings.score_matrix(_member("cosine", q, g))
    qs = q.sum(1)
    ref = (qs / np.linalg.norm(qs, axis=1, keepdims=True)) @ (g / np.linalg.norm(g, axis=1, keepdims=True)).T
    np.testing.assert_allclose(s, ref, rtol=1e-5, atol=1e-6)


def test_ensemble_aligns_ids_and_applies_published_weights(tmp_path) -> None:
    w = make_world(tmp_path, MEMBERS)
    ms = [embeddings.load_member(d) for d in w["embed_dirs"][:3]]
    qids, gids, s = ensemble.aligned_scores(ms)
    # explicit: score each member by id, weights 4, 1, 1
    ref = np.zeros((len(qids), len(gids)))
    for m, wt in zip(ms, (4.0, 1.0, 1.0)):
        sm = embeddings.score_matrix(m)
        gp = {g: i for i, g in enumerate(m.gallery.ids)}
        ref += wt * sm[:, [gp[g] for g in gids]]
    np.testing.assert_allclose(ensemble.combine(s, [m.weight for m in ms]), ref, rtol=1e-5, atol=1e-5)


def test_fused_index_equals_the_per_member_weighted_sum(tmp_path) -> None:
    w = make_world(tmp_path, MEMBERS)
    ms = [embeddings.load_member(d) for d in w["embed_dirs"]]
    _, _, s = ensemble.aligned_scores(ms)
    weights = [4.0, 1.0, 0.5, 2.0]
    fused = ensemble.FusedIndex.build(ms)
    np.testing.assert_allclose(fused.scores(weights), ensemble.combine(s, weights), rtol=1e-4, atol=1e-4)


def test_mismatched_gallery_is_an_error_naming_the_folder(tmp_path) -> None:
    w = make_world(tmp_path, MEMBERS[:2])
    m0, m1 = (embeddings.load_member(d) for d in w["embed_dirs"])
    m1.gallery = embeddings.Gallery(m1.gallery.ids[:-1], m1.gallery.feats[:-1])
    with pytest.raises(ValueError, match="p1_b"):
        ensemble.aligned_scores([m0, m1])


def test_fitted_weights_never_lose_to_published_on_val() -> None:
    rng = np.random.default_rng(0)
    q, n = 40, 40
    tgt = rng.permutation(n)
    good = rng.normal(size=(q, n))
    good[np.arange(q), tgt] += 2.0
    noise = rng.normal(size=(q, n)) * 3
    scores = np.stack([noise, good]).astype(np.float32)
    pub = [4.0, 1.0]
    w, best = ensemble.fit_weights(scores, tgt, pub)
    pub_mrr = metrics.summarize_ranks(metrics.ranks_from_scores(ensemble.combine(scores, pub), tgt))["mrr"]
    assert best >= pub_mrr
    assert w[0] / max(w[1], 1e-9) < 4.0  # the noise member lost weight
    assert ensemble.fit_weights(scores, tgt, pub) == (w, best)  # deterministic


def test_submission_ranks_every_track_best_first(tmp_path) -> None:
    rng = np.random.default_rng(2)
    s = rng.normal(size=(3, 5))
    sub = ensemble.make_submission(s, ["a", "b", "c"], ["t0", "t1", "t2", "t3", "t4"])
    for i, q in enumerate("abc"):
        assert sorted(sub[q]) == ["t0", "t1", "t2", "t3", "t4"]
        assert [s[i, int(t[1])] for t in sub[q]] == sorted(s[i], reverse=True)
    p = ensemble.write_submission(tmp_path / "sub.json", sub)
    assert json.loads(p.read_text()) == sub


def test_run_ensemble_end_to_end(tmp_path) -> None:
    w = make_world(tmp_path, MEMBERS)
    out = tmp_path / "ens"
    res = run_ensemble(w["embed_dirs"], out, data_root=w["data_root"], prep_dir=w["prep_dir"], parser=keyword_parser)
    assert res.members == ["p1_a", "p1_b", "p2_a"] and res.ablations == ["crop_only"]
    assert set(res.variant_metrics) == {"published", "published+rerank", "equal", "equal+rerank", "fitted",
                                        "fitted+rerank"}
    sub = json.loads((out / "submission.json").read_text())
    assert set(sub) == set(w["query_ids"]) and all(sorted(v) == sorted(w["test_ids"]) for v in sub.values())
    # the written submission scores exactly as the in-memory evaluation
    m = metrics.evaluate_submission(w["gt"], sub)
    assert m["mrr"] == pytest.approx(res.variant_metrics["published"]["test"]["mrr"])
    # every single model and the ensemble far above chance; the ensemble above the weakest member
    chance = res.random["expected_mrr"]
    for name in res.members:
        assert res.config_metrics[name]["test"]["mrr"] > 2 * chance
    assert res.variant_metrics["published"]["test"]["mrr"] > min(
        res.config_metrics[n]["test"]["mrr"] for n in res.members)
    # the parsed attributes are informative in this world: the re-rank helps
    assert res.variant_metrics["published+rerank"]["test"]["mrr"] > res.variant_metrics["published"]["test"]["mrr"]
    assert res.rerank["synthetic_accuracy_test"]["colour"] > 0.5
    rec = json.loads((out / "metrics.json").read_text())
    assert rec["submitted_variant"] == "published" and rec["configs"]["crop_only"]["test"]["mrr"] > 0


def test_cli_writes_a_valid_submission(tmp_path, capsys) -> None:
    w = make_world(tmp_path, MEMBERS[:3])
    out = tmp_path / "cli"
    rc = run_main([*map(str, w["embed_dirs"]), "--out", str(out), "--weights", "fitted"])
    assert rc == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["variant"] == "fitted"
    sub = json.loads((out / "submission.json").read_text())
    assert len(sub) == len(w["query_ids"])


def test_search_ranks_like_the_ensemble_and_draws_strips(tmp_path, monkeypatch) -> None:
    from lib.cityflow import Layout, load_tracks
    from lib.ensemble.search import SearchIndex, SearchMember, interactive_search, search, show_results
    from lib.thumbnails import track_path

    w = make_world(tmp_path, MEMBERS[:3], write_frames=True)
    ms = [embeddings.load_member(d) for d in w["embed_dirs"][:3]]
    # "encoders" that return the stored query features of a known query: search must reproduce the ensemble
    table: list[dict[tuple[str, ...], np.ndarray]] = [{} for _ in ms]
    queries = json.loads((w["data_root"] / "test-queries.json").read_text())
    for m, t in zip(ms, table):
        assert m.queries is not None
        for i, q in enumerate(m.queries.ids):
            t[tuple(queries[q])] = m.queries.feats[i]
    members = [SearchMember(m.name, m.rule, m.weight, (lambda s, t=t: t[tuple(s)]), m.gallery)
               for m, t in zip(ms, table)]
    index = SearchIndex(members)
    qids, gids, s = ensemble.aligned_scores(ms)
    expected = ensemble.make_submission(ensemble.combine(s, [m.weight for m in ms]), qids, gids)
    for q in qids[:5]:
        hits = search(queries[q], index, k=len(gids))
        assert [h.track_id for h in hits] == expected[q]
        assert [h.rank for h in hits[:3]] == [1, 2, 3]
    with pytest.raises(ValueError, match="non-empty"):
        search("  ", index)
    tracks = load_tracks(Layout.of(w["data_root"]).test_tracks)
    fig = show_results(search(queries[qids[0]], index, k=3), Layout.of(w["data_root"]), tracks, n_frames=3,
                       mark=w["gt"][qids[0]])
    assert len(fig.axes) == 3 * 4  # per hit: first, middle and last crop, then the path
    assert "score" in fig.axes[0].get_title(loc="left")
    tid = next(iter(tracks))
    path = track_path(Layout.of(w["data_root"]), tid, tracks[tid], size=64)
    assert path.shape == (64, 64, 3) and path.dtype == np.uint8
    monkeypatch.setenv("CFNL_HEADLESS", "1")  # a runner's kernel: no widget (a saved notebook keeps no state)
    assert interactive_search(index, Layout.of(w["data_root"]), tracks) is None
