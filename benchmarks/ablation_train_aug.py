"""Training-time text augmentation and flip (``data.train_aug``), with and without, on the ``default`` preset.

For each configuration: two trainings with the same seed and schedule, one with ``data.train_aug`` off (as every
configuration ships) and one with it on, then the test split embedded and scored. Reports test MRR with a 95 %
bootstrap interval over queries (scipy, percentile, 2000 resamples) and the paired difference (on - off) with its
interval. Part One runs with ``data.cache_text: false`` in both arms, because the word augmenters change sentences
and cached text features cannot follow them.

    .venv/bin/python -m benchmarks.ablation_train_aug [--configs a,b] [--out benchmarks/results/train_aug_default.json]

Needs the ``default`` preset prepared (``make reproduce`` has done it: data, frames, motion maps, text).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

AUG = {"p_synonym": 0.3, "p_swap": 0.1, "p_delete": 0.1, "p_spelling": 0.1, "p_flip": 0.5}
CONFIGS = ("motion_SE_3CLS_nonlpaug_288_cpu", "b48_lr1_w20_clip_e120_dd_cpu")


def reciprocal_ranks(embed_dir: Path, data_root: Path) -> np.ndarray:
    from lib.embeddings import load_member, score_matrix
    from lib.metrics import evaluate_scores, load_gt

    m = load_member(embed_dir, "test")
    assert m.queries is not None
    _, ranks = evaluate_scores(score_matrix(m), list(m.queries.ids), list(m.gallery.ids),
                               load_gt(data_root / "test-gt.json"))
    return 1.0 / (np.asarray(ranks, dtype=np.float64) + 1.0)


def interval(x: np.ndarray, seed: int = 0) -> tuple[float, float]:
    from scipy.stats import bootstrap

    res = bootstrap((x,), np.mean, n_resamples=2000, confidence_level=0.95, method="percentile",
                    random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def run_arm(name: str, overrides: dict[str, Any], out: Path, data_root: Path, prep: Path) -> dict[str, Any]:
    from lib.embed import embed_config
    from lib.families import load_config
    from lib.train import train

    cfg = load_config(name, overrides)
    t0 = time.perf_counter()
    m = train(cfg, data_root, prep, out / "train", progress=False, log=lambda s: None)
    train_s = time.perf_counter() - t0
    embed_config(cfg, out / "train" / "best.safetensors", data_root, prep, out / "embed", splits=("test",),
                 overrides=overrides, log=lambda s: None)
    rr = reciprocal_ranks(out / "embed", data_root)
    return {"val_mrr": m["val_mrr"], "steps": m["steps"], "train_s": round(train_s, 1), "test_mrr": float(rr.mean()),
            "test_mrr_ci95": interval(rr), "rr": rr}


def main(argv: list[str] | None = None) -> int:
    from lib.io import write_json
    from lib.paths import data_dir, prep_dir, runs_dir

    ap = argparse.ArgumentParser(prog="python -m benchmarks.ablation_train_aug", description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--preset", default="default")
    ap.add_argument("--out", default="benchmarks/results/train_aug_default.json")
    args = ap.parse_args(argv)
    data_root, prep = data_dir(args.preset), prep_dir(args.preset)
    rows = []
    for name in args.configs.split(","):
        base: dict[str, Any] = {"data": {"cache_text": False}} if "motion_" in name else {}
        on = json.loads(json.dumps(base))
        on.setdefault("data", {})["train_aug"] = AUG
        arms = {label: run_arm(name, ov, runs_dir("ablation") / "train_aug" / name / label, data_root, prep)
                for label, ov in (("off", base), ("on", on))}
        diff = arms["on"].pop("rr") - arms["off"].pop("rr")
        rows.append({"config": name, "off": arms["off"], "on": arms["on"], "overrides_on": on,
                     "diff_mrr": float(diff.mean()), "diff_ci95": interval(diff)})
        r = rows[-1]
        print(f"| {name} | {r['off']['test_mrr']:.4f} [{r['off']['test_mrr_ci95'][0]:.3f}, "
              f"{r['off']['test_mrr_ci95'][1]:.3f}] | {r['on']['test_mrr']:.4f} [{r['on']['test_mrr_ci95'][0]:.3f}, "
              f"{r['on']['test_mrr_ci95'][1]:.3f}] | {r['diff_mrr']:+.4f} [{r['diff_ci95'][0]:+.3f}, "
              f"{r['diff_ci95'][1]:+.3f}] | {r['off']['val_mrr']:.4f} / {r['on']['val_mrr']:.4f} |", flush=True)
    write_json(args.out, {"preset": args.preset, "augmentation": AUG, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
