"""One configuration trained under several overrides ("arms"), same seed, on a prepared synthetic preset.

For each arm: train (``lib.train.train``), embed the train and test splits (``lib.embed.embed_config``), then report
val MRR, test MRR with its 95 % bootstrap interval, the paired difference to the first arm (paired bootstrap,
``lib.ensemble.stats``), and how well the vehicle's true colour / type / manoeuvre can be read from the test
gallery embeddings (a logistic regression fitted on the train gallery with the generator's truth: what the
embeddings carry, not what the report's parser-label classifiers reach).

    .venv/bin/python -m benchmarks.ablation CONFIG --arm NAME='JSON overrides' [--arm ...] [--seeds 0,1,2]
        [--preset default] [--out benchmarks/results/ablation_<CONFIG>.json]

``--seeds`` trains every arm once per seed (``train.seed``) and reports the spread of test MRR. Needs the preset
prepared (``make reproduce`` has done it: data, frames, motion maps, text).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(a))
    for k, v in b.items():
        out[k] = _merge(out.get(k, {}), v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def ranks_of(embed_dir: Path, data_root: Path) -> np.ndarray:
    from lib.embeddings import load_member, score_matrix
    from lib.metrics import evaluate_scores, load_gt

    m = load_member(embed_dir, "test")
    assert m.queries is not None
    _, ranks = evaluate_scores(score_matrix(m), list(m.queries.ids), list(m.gallery.ids),
                               load_gt(data_root / "test-gt.json"))
    return np.asarray(ranks)


def fit_and_score(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> float:
    """Test accuracy of the read-out classifier: standardised features, a logistic regression fitted on train."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)).fit(x_train, y_train)
    return float(clf.score(x_test, y_test))


def readout(embed_dir: Path, data_root: Path) -> dict[str, float]:
    """Test accuracy of a logistic regression (fit on the train gallery) for the true colour / type / manoeuvre."""
    from lib.embeddings import load_gallery_embeddings
    from lib.io import read_json
    from lib.text.attributes import expected_manoeuvre

    truth = read_json(data_root / "synthetic-labels.json")
    tr = load_gallery_embeddings(embed_dir / "train_gallery.npz")
    te = load_gallery_embeddings(embed_dir / "gallery.npz")
    out = {}
    for attr in ("colour", "type", "manoeuvre"):
        def lab(ids: Any, attr: str = attr) -> np.ndarray:
            return np.array([expected_manoeuvre(truth[i][attr]) if attr == "manoeuvre" else truth[i][attr]
                             for i in ids])
        out[attr] = fit_and_score(tr.feats, lab(tr.ids), te.feats, lab(te.ids))
    return out


def run_arm(name: str, overrides: dict[str, Any], out: Path, data_root: Path, prep: Path) -> dict[str, Any]:
    from lib.embed import embed_config
    from lib.families import load_config
    from lib.train import train

    cfg = load_config(name, overrides)
    t0 = time.perf_counter()
    m = train(cfg, data_root, prep, out / "train", progress=False, log=lambda s: None)
    train_s = time.perf_counter() - t0
    embed_config(cfg, out / "train" / "best.safetensors", data_root, prep, out / "embed", splits=("train", "test"),
                 overrides=overrides, log=lambda s: None)
    ranks = ranks_of(out / "embed", data_root)
    from lib.ensemble.stats import intervals, per_query

    ci = intervals(ranks)
    return {"val_mrr": m["val_mrr"], "steps": m["steps"], "train_s": round(train_s, 1),
            "test_mrr": float(per_query(ranks)["mrr"].mean()), "test_mrr_ci95": list(ci["mrr"]),
            "readout_test": readout(out / "embed", data_root), "ranks": ranks.tolist()}


def main(argv: list[str] | None = None) -> int:
    from lib.ensemble.stats import paired_test, per_query
    from lib.io import write_json
    from lib.paths import data_dir, prep_dir, runs_dir

    ap = argparse.ArgumentParser(prog="python -m benchmarks.ablation", description=__doc__.split("\n\n")[0])
    ap.add_argument("config")
    ap.add_argument("--arm", action="append", required=True, help="NAME=JSON overrides (the first is the baseline)")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    data_root, prep = data_dir(args.preset), prep_dir(args.preset)
    arms = [(a.split("=", 1)[0], json.loads(a.split("=", 1)[1] or "{}")) for a in args.arm]
    seeds = [int(s) for s in args.seeds.split(",")]
    rows: list[dict[str, Any]] = []
    base_rr: dict[int, np.ndarray] = {}
    for label, ov in arms:
        for seed in seeds:
            full = _merge(ov, {"train": {"seed": seed}}) if len(seeds) > 1 or seed != 0 else ov
            r = run_arm(args.config, full, runs_dir("ablation") / args.config / f"{label}_s{seed}", data_root, prep)
            rr = per_query(np.asarray(r["ranks"]))["mrr"]
            if label == arms[0][0]:
                base_rr[seed] = rr
            t = paired_test(rr, base_rr[seed], label, arms[0][0])
            rows.append({"arm": label, "seed": seed, "overrides": full, **r,
                         "vs_first": {"diff": t.diff, "diff_ci95": list(t.diff_ci), "p_better": t.p_a_better}})
            ro = r["readout_test"]
            print(f"| {label} | {seed} | {r['val_mrr']:.4f} | {r['test_mrr']:.4f} [{r['test_mrr_ci95'][0]:.3f}, "
                  f"{r['test_mrr_ci95'][1]:.3f}] | {t.diff:+.4f} (p {t.p_a_better:.3f}) | {ro['colour']:.2f} / "
                  f"{ro['type']:.2f} / {ro['manoeuvre']:.2f} | {r['train_s']:.0f} s |", flush=True)
    spread = {label: float(np.ptp([r["test_mrr"] for r in rows if r["arm"] == label])) for label, _ in arms}
    out = args.out or f"benchmarks/results/ablation_{args.config}.json"
    write_json(out, {"config": args.config, "preset": args.preset, "seeds": seeds, "rows": rows,
                     "test_mrr_spread_over_seeds": spread})
    print(f"spread of test MRR over seeds: {spread}; written: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
