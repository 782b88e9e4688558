"""The authors' release: restricted unpickling, conversion, and our ranking == the published formula's."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

from lib.ensemble import release
from lib.ensemble.run import run_ensemble

P1 = ["motion_effb3_NOCLS_nlpaug_320", "motion_SE_NOCLS_nonlpaug_288"]
P2 = ["b48_lr1_w20_clip_e120_dd", "b48_lr1_w20_clip_e100_dd_drop0.75_CROP320_pad0.2"]


def _l2n(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def make_release(tmp_path, protocol: int = 4, n_tracks: int = 12, n_queries: int = 9, seed: int = 0):
    """Small pickles in the published shapes, written with pickle.dumps like the authors' scripts did."""
    rng = np.random.default_rng(seed)
    tracks = [f"track-{i:03d}" for i in range(n_tracks)]
    queries = [f"query-{i:03d}" for i in range(n_queries)]
    d = tmp_path / "release"
    d.mkdir()
    data = {"p1": {}, "p2": None}
    for cfg, n_sent in zip(P1, (4, 3)):
        img = {t: {int(f): _l2n(rng.normal(size=16)).astype(np.float32)
                   for f in rng.choice(200, size=int(rng.integers(1, 6)), replace=False)} for t in tracks}
        lang = {q: _l2n(rng.normal(size=(n_sent, 16))).astype(np.float32) for q in queries}
        (d / f"img_feat_{cfg}.pkl").write_bytes(pickle.dumps(img, protocol=protocol))
        (d / f"lang_feat_{cfg}.pkl").write_bytes(pickle.dumps(lang, protocol=protocol))
        data["p1"][cfg] = (img, lang)
    # Part Two: two models concatenated, as test.py writes for --names a,b
    gal = {(t,): np.concatenate([_l2n(rng.normal(size=8)), _l2n(rng.normal(size=8))]).astype(np.float32)
           for t in tracks}
    qry = {q: np.concatenate([_l2n(rng.normal(size=8)), _l2n(rng.normal(size=8))]).astype(np.float32)
           for q in queries}
    names = ",".join(P2)
    (d / f"submit_result_{names}_gallery.pkl").write_bytes(pickle.dumps(gal, protocol=protocol))
    (d / f"submit_result_{names}_query.pkl").write_bytes(pickle.dumps(qry, protocol=protocol))
    data["p2"] = (gal, qry)
    return d, tracks, queries, data


def published_ranking(tracks, queries, data) -> dict[str, list[str]]:
    """The published ensemble written out literally, one query and one track at a time."""
    out = {}
    gal, qry = data["p2"]
    for q in queries:
        scores = []
        for t in tracks:
            s = 0.0
            for cfg, w in zip(P1, (4.0, 1.0)):
                img, lang = data["p1"][cfg]
                g = np.mean([img[t][f] for f in img[t]], axis=0)  # mean of frames, not re-normalised
                s += w * np.mean([float(np.dot(sent, g)) for sent in lang[q]])
            for i in range(2):  # each Part Two model: re-normalise both sides, cosine, weight 1
                gv, qv = gal[(t,)][i * 8:(i + 1) * 8], qry[q][i * 8:(i + 1) * 8]
                s += float(np.dot(qv / np.linalg.norm(qv), gv / np.linalg.norm(gv)))
            scores.append(s)
        out[q] = [tracks[i] for i in np.argsort(-np.asarray(scores), kind="stable")]
    return out


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_our_ensemble_on_the_release_equals_the_published_formula(tmp_path, protocol: int) -> None:
    src, tracks, queries, data = make_release(tmp_path, protocol)
    dirs = release.convert_release(src, tmp_path / "embed", part_two_split=2)
    assert sorted(d.name for d in dirs) == sorted(P1 + P2)
    manifest = json.loads((tmp_path / "embed" / P1[0] / "embedding.json").read_text())
    assert manifest["weight"] == 4.0 and manifest["rule"] == "mean_dot"
    res = run_ensemble(dirs, tmp_path / "out")
    sub = json.loads((tmp_path / "out" / "submission.json").read_text())
    assert sub == published_ranking(tracks, queries, data)
    assert res.submitted_variant == "published"


def test_restricted_unpickler_loads_plain_containers_and_arrays() -> None:
    obj = {("a",): np.arange(3, dtype=np.float32), "b": [1, 2.5, "x", b"y", None, True], "c": {1, 2},
           "d": frozenset({3}), "e": np.float32(2.0), "f": np.zeros((2, 3), dtype=np.float64), "g": 1 + 2j}
    for protocol in (2, 3, 4, 5):
        back = release.restricted_loads(pickle.dumps(obj, protocol=protocol))
        assert back.keys() == obj.keys()
        np.testing.assert_array_equal(back[("a",)], obj[("a",)])
        assert back["b"] == obj["b"] and back["c"] == obj["c"] and back["e"] == 2.0


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


class _Eval:
    def __reduce__(self):
        return (eval, ("1+1",))


@pytest.mark.parametrize("payload,name", [(_Evil(), "system"), (_Eval(), "builtins.eval")])
def test_malicious_pickles_are_refused_naming_the_global_and_the_file(tmp_path, payload, name) -> None:
    path = tmp_path / "img_feat_evil.pkl"
    path.write_bytes(pickle.dumps({"track": {0: payload}}))
    with pytest.raises(release.ReleaseError, match=rf"img_feat_evil\.pkl: refused to load global '.*{name}'"):
        release.restricted_load(path)


def test_object_arrays_and_unknown_classes_are_refused() -> None:
    with pytest.raises(release.ReleaseError, match="refused"):
        release.restricted_loads(pickle.dumps(np.array([_Evil()], dtype=object)))
    with pytest.raises(release.ReleaseError, match="collections.OrderedDict"):
        import collections

        release.restricted_loads(pickle.dumps(collections.OrderedDict(a=1)))


def test_corrupt_and_misshaped_files_name_the_file(tmp_path) -> None:
    with pytest.raises(release.ReleaseError, match="bad.pkl: not a readable pickle"):
        release.restricted_loads(b"\x80\x04garbage", "bad.pkl")
    with pytest.raises(release.ReleaseError, match="track t"):
        release.part_one_arrays({"t": {0: np.zeros((2, 3))}}, {"q": np.zeros((3, 3))}, source="img_feat_x.pkl")


def test_run_release_scores_the_published_ranking(tmp_path) -> None:
    src, tracks, queries, data = make_release(tmp_path)
    data_root = tmp_path / "data"
    data_root.mkdir()
    gt = {q: tracks[i % len(tracks)] for i, q in enumerate(queries)}
    (data_root / "test-gt.json").write_text(json.dumps(gt))
    res = release.run_release(src, tmp_path / "out", data_root=data_root, part_two_split=2)
    sub = json.loads((tmp_path / "out" / "ensemble" / "submission.json").read_text())
    assert sub == published_ranking(tracks, queries, data)
    from lib.metrics import evaluate_submission

    assert res["submission"]["mrr"] == pytest.approx(evaluate_submission(gt, sub)["mrr"])
    assert set(res["configs"]) == set(P1 + P2)
