"""The effect of ``embed.reduced_decode`` on a configuration's outputs and test MRR, one trained model embedded twice.

For each configuration: train it once on a prepared synthetic preset (``lib.train.train``, its own seed), embed the
test split with the published full-resolution decode and again with ``embed.reduced_decode: true``, and report the
test MRR of each with its 95 % bootstrap interval, the paired difference (``lib.ensemble.stats``), the cosine between
the two galleries' track features, the share of gallery frames that were decoded reduced, and both embedding times.

    .venv/bin/python -m benchmarks.reduced_decode [CONFIG ...] [--preset default]
        [--out benchmarks/results/reduced_decode.json]

Default configurations: the two padded Part Two CPU variants (a pad-0.2 window is the crop that reduction helps).
Needs the preset prepared (``make reproduce`` has done it).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

CONFIGS = ["b36_lr1_w20_clip_e100_dd_drop0.9_CROP256_nseg3_pad0.2_cpu",
           "b48_lr1_w20_clip_e100_dd_drop0.75_CROP320_pad0.2_cpu"]


def reduced_share(cfg: Any, data_root: Path, tracks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """How many of the gallery's frames the option decodes at 1/2, 1/4, 1/8 (the family's crop and frame rule)."""
    from PIL import Image

    from lib.cityflow import Layout
    from lib.families import get_family
    from lib.families.gallery import frame_reduction, plan_requests
    from lib.families.instance.data import gallery_crop_fn

    fam = get_family(cfg.family)
    fn = gallery_crop_fn(fam.test_pad(cfg), cfg.model.crop_size)
    plan = plan_requests(tracks, None, select=lambda n: fam.gallery_frame_indices(cfg, n))
    layout = Layout.of(data_root)
    counts: dict[int, int] = {}
    for frame, reqs in plan.items():
        with Image.open(layout.frame_path(frame)) as im:
            w, h = im.size
        r = frame_reduction(fn, [q.box for q in reqs], w, h)
        counts[r] = counts.get(r, 0) + 1
    return {"frames": len(plan), "by_reduction": {str(k): v for k, v in sorted(counts.items())}}


def run_config(name: str, data_root: Path, prep: Path, out: Path) -> dict[str, Any]:
    from benchmarks.ablation import ranks_of
    from lib.embed import embed_config
    from lib.embeddings import load_gallery_embeddings
    from lib.ensemble.stats import intervals, paired_test, per_query
    from lib.families import load_config
    from lib.io import read_json
    from lib.train import train

    cfg = load_config(name)
    m = train(cfg, data_root, prep, out / "train", progress=False, log=lambda s: None)
    rows: dict[str, Any] = {}
    ranks: dict[str, np.ndarray] = {}
    feats: dict[str, np.ndarray] = {}
    for arm, ov in (("published", {}), ("reduced", {"embed": {"reduced_decode": True}})):
        c = load_config(name, ov)
        t0 = time.perf_counter()
        embed_config(c, out / "train" / "best.safetensors", data_root, prep, out / arm, splits=("test",),
                     overrides=ov, log=lambda s: None, force=True)
        secs = time.perf_counter() - t0
        ranks[arm] = ranks_of(out / arm, data_root)
        feats[arm] = load_gallery_embeddings(out / arm / "gallery.npz").feats
        ci = intervals(ranks[arm])
        rows[arm] = {"test_mrr": float(per_query(ranks[arm])["mrr"].mean()), "test_mrr_ci95": list(ci["mrr"]),
                     "embed_s": secs}
    t = paired_test(per_query(ranks["reduced"])["mrr"], per_query(ranks["published"])["mrr"], "reduced",
                    "published")
    a, b = feats["published"], feats["reduced"]
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    tracks = read_json(data_root / "test-tracks.json")
    return {"config": name, "val_mrr": m["val_mrr"], "steps": m["steps"], **rows,
            "reduced_vs_published": {"diff": t.diff, "diff_ci95": list(t.diff_ci), "p_reduced_better": t.p_a_better},
            "gallery_cosine": {"min": float(cos.min()), "mean": float(cos.mean())},
            "identical": bool(np.array_equal(a, b)), "gallery_frames": reduced_share(cfg, data_root, tracks)}


def main(argv: list[str] | None = None) -> int:
    from lib.io import git_commit, machine_info, write_json
    from lib.paths import data_dir, prep_dir, runs_dir

    ap = argparse.ArgumentParser(prog="python -m benchmarks.reduced_decode", description=__doc__.split("\n\n")[0])
    ap.add_argument("configs", nargs="*", default=CONFIGS)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--out", default="benchmarks/results/reduced_decode.json")
    args = ap.parse_args(argv)
    data_root, prep = data_dir(args.preset), prep_dir(args.preset)
    rows = []
    for name in args.configs:
        r = run_config(name, data_root, prep, runs_dir("reduced_decode") / name)
        rows.append(r)
        p, q = r["published"], r["reduced"]
        print(f"| {name} | {p['test_mrr']:.4f} [{p['test_mrr_ci95'][0]:.3f}, {p['test_mrr_ci95'][1]:.3f}] | "
              f"{q['test_mrr']:.4f} [{q['test_mrr_ci95'][0]:.3f}, {q['test_mrr_ci95'][1]:.3f}] | "
              f"{r['reduced_vs_published']['diff']:+.4f} (p {r['reduced_vs_published']['p_reduced_better']:.2f}) | "
              f"cos min {r['gallery_cosine']['min']:.4f} | frames {r['gallery_frames']['by_reduction']} | "
              f"embed {p['embed_s']:.1f} s vs {q['embed_s']:.1f} s |", flush=True)
    write_json(args.out, {"preset": args.preset, "git_commit": git_commit(), "machine": machine_info(),
                          "rows": rows})
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
