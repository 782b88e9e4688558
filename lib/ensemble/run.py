"""The ensemble step end to end: every configuration and every ensemble variant, scored on val and test.

``run_ensemble(embed_dirs, out_dir, data_root, prep_dir, ...)`` loads each configuration's embeddings
(``lib.embed``), scores them with their published rule, evaluates every single configuration, then the ensemble
variants

- ``published``: the configurations' ``ensemble_weight`` (4, 1, 1, 1, 1 / 1, 1, 1);
- ``equal``: every weight 1;
- ``fitted``: weights that maximise MRR on the val split (in-sample on val: judge it on test); not computed when a
  member trained on the val tracks (``train.train_on: all``, the published Part Two): a paper run has no fold that
  every member held out, so its ensemble shows the published and equal weights only;
- each of them ``+rerank``: the attribute re-rank of ``lib.ensemble.rerank`` (needs the training tracks' embeddings,
  the dataset's descriptions and the attribute parser),

and a random ranking (chance level). Configurations whose manifest marks them as an ablation (e.g. the crop-only
model) are evaluated but never enter an ensemble. It writes ``OUT/submission.json`` (the chosen variant, every
track ranked for every query), ``OUT/metrics.json`` and ``OUT/weights.json``, and returns an
:class:`EnsembleResult` that ``lib.ensemble.report`` turns into the summary.

Command line::

    python -m lib.ensemble EMBED_DIR [EMBED_DIR ...] --out OUT [--data-root D --prep-dir P]
        [--weights published|fitted|equal] [--rerank] [--gt test-gt.json]

writes ``OUT/submission.json`` (the chosen variant), ``OUT/metrics.json`` (every variant when a ground truth is
available) and ``OUT/weights.json``; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lib.cityflow import Layout, load_queries, load_tracks
from lib.embeddings import SPLIT_FILES, Member, load_gallery_embeddings, load_member
from lib.ensemble.rerank import (
    AttributeClassifiers,
    AttributeLabels,
    AttributePredictions,
    classifier_features,
    parse_all,
    rerank_scores,
)
from lib.ensemble.scores import (
    SplitScores,
    combine,
    evaluate_split,
    fit_weights,
    make_submission,
    split_scores,
    val_ground_truth,
    write_submission,
)
from lib.io import read_json, write_json
from lib.metrics import expected_random_mrr, load_gt, random_ranking_metrics

BASE_VARIANTS = ("published", "equal", "fitted")
Parser = Callable[[Sequence[str]], AttributeLabels]


@dataclasses.dataclass
class RerankSettings:
    enabled: bool = True
    min_prob: float = 0.3
    top_k: int | None = None
    c: float = 1.0


@dataclasses.dataclass
class EnsembleResult:
    members: list[str]
    ablations: list[str]
    weights: dict[str, list[float]]
    test: SplitScores
    val: SplitScores | None
    config_metrics: dict[str, dict[str, dict[str, float]]]  # name -> split -> metrics
    variant_metrics: dict[str, dict[str, dict[str, float]]]  # variant -> split -> metrics
    test_ranks: dict[str, np.ndarray]  # config or variant -> [Q] ranks on test
    variant_scores: dict[str, np.ndarray]  # variant -> [Q, N] test scores
    random: dict[str, float]
    submission_path: Path
    submitted_variant: str
    rerank: dict[str, Any]
    seconds: float = 0.0
    sources: dict[str, str] = dataclasses.field(default_factory=dict)  # configuration -> its embedding folder

    @property
    def test_metrics(self) -> dict[str, dict[str, float]]:
        return {v: m["test"] for v, m in self.variant_metrics.items() if "test" in m}


def _split_available(embed_dirs: Sequence[Path], split: str) -> bool:
    files = [f for f in SPLIT_FILES[split] if f]
    return all((d / f).exists() for d in embed_dirs for f in files)


def _test_gt(data_root: Path | None, gt_path: str | os.PathLike[str] | None) -> dict[str, str] | None:
    if gt_path is not None:
        return load_gt(gt_path)
    if data_root is not None and Layout.of(data_root).test_gt.exists():
        return load_gt(Layout.of(data_root).test_gt)
    return None


def _train_descriptions(data_root: Path) -> dict[str, list[str]]:
    tracks = load_tracks(Layout.of(data_root).train_tracks)
    out = {}
    for uid, t in tracks.items():
        if not t.get("nl"):
            raise ValueError(f"{Layout.of(data_root).train_tracks}: track {uid}: field 'nl' is missing or empty")
        out[uid] = list(t["nl"])
    return out


def _aligned_gallery(members: Sequence[Member], ids: Sequence[str], split: str) -> list[np.ndarray]:
    out = []
    for m in members:
        pos = {g: i for i, g in enumerate(m.gallery.ids)}
        missing = [g for g in ids if g not in pos]
        if missing:
            raise ValueError(f"{m.source}: {split} gallery lacks tracks {missing[:3]}")
        out.append(m.gallery.feats[[pos[g] for g in ids]])
    return out


def _fit_attribute_classifiers(embed_dirs: Sequence[Path], members: Sequence[Member], data_root: Path,
                               settings: RerankSettings, parser: Parser | None
                               ) -> tuple[AttributeClassifiers, dict[str, Any]]:
    train_galleries = [load_gallery_embeddings(d / SPLIT_FILES["train"][0]) for d in embed_dirs]
    ids = train_galleries[0].ids
    feats = []
    for m, g in zip(members, train_galleries):
        pos = {x: i for i, x in enumerate(g.ids)}
        if set(pos) != set(ids):
            raise ValueError(f"{m.source}: train gallery ids differ from {embed_dirs[0]}")
        feats.append(g.feats[[pos[x] for x in ids]])
    desc = _train_descriptions(data_root)
    missing = [x for x in ids if x not in desc]
    if missing:
        raise KeyError(f"train gallery tracks not in {Layout.of(data_root).train_tracks}: {missing[:3]}")
    labels = parse_all([desc[x] for x in ids], parser)
    clf = AttributeClassifiers(c=settings.c).fit(classifier_features(feats), labels)
    info = {"n_train_tracks": len(ids), "train_label_counts": clf.train_counts,
            "constant_attributes": dict(clf.constant)}
    return clf, info


def _synthetic_readout(preds: AttributePredictions, gallery_ids: Sequence[str], data_root: Path
                       ) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
    """Agreement of the predicted track attributes with the synthetic generator's truth (when it exists): the
    accuracy per attribute and its truth x prediction confusion (:func:`lib.ensemble.failures.confusion`)."""
    path = data_root / "synthetic-labels.json"
    if not path.exists():
        return {}, {}
    from lib.ensemble.failures import confusion
    from lib.text.attributes import expected_manoeuvre

    truth = read_json(path)
    acc, conf = {}, {}
    for attr in ("colour", "type", "manoeuvre"):
        if attr not in preds.probs:
            continue
        pred = preds.argmax(attr)
        conv = expected_manoeuvre if attr == "manoeuvre" else str
        pairs = [(p.lower(), conv(str(truth[g][attr])).lower()) for p, g in zip(pred, gallery_ids)
                 if g in truth and attr in truth[g]]
        if pairs:
            acc[attr] = float(np.mean([p == t for p, t in pairs]))
            conf[attr] = confusion([t for _, t in pairs], [p for p, _ in pairs])
    return acc, conf


def run_ensemble(embed_dirs: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str],
                 data_root: str | os.PathLike[str] | None = None, prep_dir: str | os.PathLike[str] | None = None,
                 submit_weights: str = "published", submit_rerank: bool = False,
                 gt_path: str | os.PathLike[str] | None = None, seed: int = 0,
                 rerank: RerankSettings | None = None, parser: Parser | None = None) -> EnsembleResult:
    """Evaluate every configuration and ensemble variant; write the submission; see the module docstring.

    ``parser`` maps a description's sentences to :class:`lib.ensemble.rerank.AttributeLabels` (default:
    ``lib.text.attributes``).
    """
    t0 = time.perf_counter()
    dirs = [Path(d) for d in embed_dirs]
    out = Path(out_dir)
    root = Path(data_root).resolve() if data_root is not None else None
    settings = rerank or RerankSettings()
    if submit_weights not in BASE_VARIANTS:
        raise ValueError(f"submit_weights must be one of {BASE_VARIANTS}, got {submit_weights!r}")

    test_all = [load_member(d, "test") for d in dirs]
    names = [m.name for m in test_all]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"configuration name(s) {dup} appear in several embedding folders: "
                         f"{[str(d) for d, m in zip(dirs, test_all) if m.name in dup]}")
    member_idx = [i for i, m in enumerate(test_all) if not m.ablation]
    if not member_idx:
        raise ValueError(f"every configuration is marked as an ablation: {[m.name for m in test_all]}")
    members = [test_all[i] for i in member_idx]
    member_dirs = [dirs[i] for i in member_idx]
    gt = _test_gt(root, gt_path)
    test = split_scores(test_all, gt)
    val: SplitScores | None = None
    if _split_available(dirs, "val"):
        val_all = [load_member(d, "val") for d in dirs]
        val = split_scores(val_all, val_ground_truth(val_all[0].queries.ids if val_all[0].queries else []))

    config_metrics: dict[str, dict[str, dict[str, float]]] = {m.name: {} for m in test_all}
    test_ranks: dict[str, np.ndarray] = {}
    for i, m in enumerate(test_all):
        if test.target_index is not None:
            config_metrics[m.name]["test"], test_ranks[m.name] = evaluate_split(test.scores[i], test)
        if val is not None:
            config_metrics[m.name]["val"] = evaluate_split(val.scores[i], val)[0]

    published = [m.weight for m in members]
    weights: dict[str, list[float]] = {"published": published, "equal": [1.0] * len(members)}
    fit_on_trained = sorted(m.name for m in members if m.val_is_training_fit)
    if val is not None and val.target_index is not None and not fit_on_trained:
        weights["fitted"], _ = fit_weights(val.scores[member_idx], val.target_index, published)
    if submit_weights not in weights:
        why = (f"members {fit_on_trained} trained on the val tracks (train.train_on: all), so weights fitted on val "
               "would be fitted on training data" if fit_on_trained and submit_weights == "fitted" else
               "need the val split embeddings (val_*.npz) of every member")
        raise ValueError(f"weights {submit_weights!r}: {why}")

    # Attribute re-rank: classifiers on the training tracks' embeddings, labels from the parser.
    rerank_info: dict[str, Any] = {"enabled": False, "settings": dataclasses.asdict(settings)}
    test_rr = val_rr = None
    can_rerank = (settings.enabled and root is not None and _split_available(member_dirs, "train"))
    if submit_rerank and not can_rerank:
        raise FileNotFoundError("the re-rank needs data_root and every member's train_gallery.npz (lib.embed)")
    if can_rerank:
        assert root is not None
        clf, info = _fit_attribute_classifiers(member_dirs, members, root, settings, parser)
        queries = load_queries(Layout.of(root).test_queries)
        missing = [q for q in test.query_ids if q not in queries]
        if missing:
            raise KeyError(f"{Layout.of(root).test_queries}: queries {missing[:3]} not found")
        test_q = parse_all([queries[q] for q in test.query_ids], parser)
        test_pred = clf.predict(classifier_features(_aligned_gallery(members, test.gallery_ids, "test")))
        test_rr = (test_q, test_pred)
        info["synthetic_accuracy_test"], info["confusions_test"] = _synthetic_readout(test_pred, test.gallery_ids,
                                                                                      root)
        info["queries_stating"] = {a: float(np.mean([bool(q.query_values(a)) for q in test_q]))
                                   for a in ("colour", "type", "manoeuvre")}
        if val is not None:
            desc = _train_descriptions(root)
            val_members = [load_member(d, "val") for d in member_dirs]
            val_q = parse_all([desc[q] for q in val.query_ids], parser)
            val_pred = clf.predict(classifier_features(_aligned_gallery(val_members, val.gallery_ids, "val")))
            val_rr = (val_q, val_pred)
        rerank_info.update(enabled=True, **info)

    variant_metrics: dict[str, dict[str, dict[str, float]]] = {}
    variant_scores: dict[str, np.ndarray] = {}
    for base, w in weights.items():
        for rr in (False, True):
            if rr and test_rr is None:
                continue
            name = base + ("+rerank" if rr else "")
            s_test = combine(test.scores[member_idx], w)
            if rr:
                assert test_rr is not None
                s_test = rerank_scores(s_test, *test_rr, min_prob=settings.min_prob, top_k=settings.top_k)
            variant_scores[name] = s_test
            variant_metrics[name] = {}
            if test.target_index is not None:
                variant_metrics[name]["test"], test_ranks[name] = evaluate_split(s_test, test)
            if val is not None and val.target_index is not None and (not rr or val_rr is not None):
                s_val = combine(val.scores[member_idx], w)
                if rr:
                    assert val_rr is not None
                    s_val = rerank_scores(s_val, *val_rr, min_prob=settings.min_prob, top_k=settings.top_k)
                variant_metrics[name]["val"] = evaluate_split(s_val, val)[0]

    submitted = submit_weights + ("+rerank" if submit_rerank else "")
    sub = make_submission(variant_scores[submitted], test.query_ids, test.gallery_ids)
    sub_path = write_submission(out / "submission.json", sub)
    n_q, n_g = len(test.query_ids), len(test.gallery_ids)
    random = random_ranking_metrics(n_q, n_g, seed=seed) | {"expected_mrr": expected_random_mrr(n_g)}
    seconds = time.perf_counter() - t0
    result = EnsembleResult(
        members=[m.name for m in members], ablations=[m.name for m in test_all if m.ablation], weights=weights,
        test=test, val=val, config_metrics=config_metrics, variant_metrics=variant_metrics, test_ranks=test_ranks,
        variant_scores=variant_scores, random=random, submission_path=sub_path, submitted_variant=submitted,
        rerank=rerank_info, seconds=seconds, sources={m.name: m.source for m in test_all})
    write_json(out / "weights.json", {"members": result.members, "weights": weights,
                                      "rules": {m.name: m.rule for m in members},
                                      "no_fitted_weights_because_trained_on_val": fit_on_trained})
    write_json(out / "metrics.json", metrics_record(result))
    return result


def metrics_record(result: EnsembleResult) -> dict[str, Any]:
    """A JSON-ready summary of an :class:`EnsembleResult` (what ``metrics.json`` holds)."""
    return {
        "members": result.members, "ablations": result.ablations, "weights": result.weights,
        "configs": result.config_metrics, "variants": result.variant_metrics, "random": result.random,
        "submitted_variant": result.submitted_variant, "submission": str(result.submission_path),
        "n_queries": len(result.test.query_ids), "n_tracks": len(result.test.gallery_ids),
        "n_val_queries": len(result.val.query_ids) if result.val is not None else 0,
        "rerank": result.rerank, "seconds": round(result.seconds, 3),
    }


def notebook_metrics(result: EnsembleResult) -> dict[str, Any]:
    """What 06_ensemble records: the submission (path, variant and its test metrics when scored) and every row."""
    sub: dict[str, Any] = {"path": str(result.submission_path), "variant": result.submitted_variant}
    sub.update(result.test_metrics.get(result.submitted_variant, {}))
    return {"submission": sub, "members": result.members, "ablations": result.ablations,
            "configs": result.config_metrics, "variants": result.variant_metrics, "random": result.random,
            "weights": result.weights, "rerank_enabled": bool(result.rerank.get("enabled"))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lib.ensemble",
                                 description="Weighted ensemble of embedding folders: submission, metrics, weights.")
    ap.add_argument("embed_dirs", nargs="+", help="embedding folders written by lib.embed (one per configuration)")
    ap.add_argument("--out", required=True, help="output folder (submission.json, metrics.json, weights.json)")
    ap.add_argument("--data-root", help="dataset root (test queries for the re-rank, test-gt.json when present)")
    ap.add_argument("--prep-dir", help="prep folder (split.json for the re-rank classifiers)")
    ap.add_argument("--weights", choices=("published", "fitted", "equal"), default="published",
                    help="weights of the submitted variant (fitted: on the val split)")
    ap.add_argument("--rerank", action="store_true", help="apply the attribute re-rank to the submitted variant")
    ap.add_argument("--gt", help="ground truth {query: track} (default: DATA_ROOT/test-gt.json when present)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    res = run_ensemble(args.embed_dirs, out_dir=args.out, data_root=args.data_root, prep_dir=args.prep_dir,
                       submit_weights=args.weights, submit_rerank=args.rerank, gt_path=args.gt, seed=args.seed)
    summary = {"submission": str(res.submission_path), "variant": res.submitted_variant,
               "seconds": round(time.perf_counter() - t0, 2)}
    if res.submitted_variant in res.test_metrics:
        summary.update(res.test_metrics[res.submitted_variant])
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    from lib.cli import run_main

    raise SystemExit(run_main(main))
