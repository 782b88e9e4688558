"""Training data pipeline of every paper configuration at paper frame size (``make bench``).

Input: the ``paper_shape`` synthetic preset (1920x1080 frames, real box sizes, 48 train tracks on 3 cameras;
``tiny`` when quick), generated once into ``artifacts/data/paper_shape`` and reused. For each of the eight paper
configurations, the family's own training dataset (``family.train_dataset``: Part One = the crop at its crop area
resized to 288/320 px + the motion map; Part Two = ``nseg`` padded crops at 256/320 px through the published
transform) is read sample by sample in one process — samples per second per DataLoader worker:

- ours: ``data.crop_store: true`` (the paper default): crops cut once into JPEG camera shards
  (:mod:`lib.families.crop_store`), the motion map cached at input size;
- baseline: ``data.crop_store: false``, the original's way: the full frame decoded (PIL) per crop, the motion-map
  JPEG decoded and resized per sample.

Both read the same sample keys (the same frames, sentences and augmentation draws); the details give the pixel
difference between the two, the store's build time and size, and its size extrapolated to the real splits
(2498 train + 530 test tracks, boxes per track from the real annotations when ``shared/`` has them, else the test
split's published 27,130 boxes / 530 tracks).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

PAPER = ["motion_effb3_NOCLS_nlpaug_320", "motion_effb2_1CLS_nlpaug_288", "motion_SE_3CLS_nonlpaug_288",
         "motion_SE_NOCLS_nlpaug_288", "motion_SE_NOCLS_nonlpaug_288", "b48_lr1_w20_clip_e120_dd",
         "b36_lr1_w20_clip_e100_dd_drop0.9_CROP256_nseg3_pad0.2", "b48_lr1_w20_clip_e100_dd_drop0.75_CROP320_pad0.2"]
REAL_TRAIN_TRACKS, REAL_TEST_TRACKS, REAL_TEST_BOXES = 2498, 530, 27130


def real_boxes_per_track() -> tuple[float, str]:
    """Mean boxes per track of the real annotations (``shared/data``'s val split), else of the real test split."""
    from lib.io import read_json
    from lib.paths import ROOT

    val = ROOT.parent / "shared" / "data" / "cityflow_nl_annotations" / "val.json"
    if val.exists():
        tracks = read_json(val)
        return float(np.mean([len(t["boxes"]) for t in tracks.values()])), f"{val.name} ({len(tracks)} tracks)"
    return REAL_TEST_BOXES / REAL_TEST_TRACKS, "the real test split (27,130 boxes / 530 tracks)"


def _time(ds: Any, keys: list[Any]) -> float:
    t0 = time.perf_counter()
    for k in keys:
        ds[k]
    return time.perf_counter() - t0


def _diff(a: Any, b: Any) -> float:
    """Mean absolute difference of two samples' images, in grey levels of 255."""
    if "crop" in a:  # Part One: uint8 HWC
        return float((a["crop"].int() - b["crop"].int()).abs().float().mean())
    return float((a["images"] - b["images"]).abs().mean() * 127.5)  # Part Two: normalised to [-1, 1]


def bench_config(name: str, data: Path, prep: Path, cache: Path, n_ours: int, n_base: int, repeats: int,
                 small: bool) -> dict[str, Any]:
    from lib.families import load_config
    from lib.families.base import SampleKey, TrainContext, get_family
    from lib.prep import load_split

    over: dict[str, Any] = {"model": {"backbone_weights": None}}
    if small:  # the tiny preset: inputs that fit its 320x180 frames
        over["model"].update({"image_size": 64} if name.startswith(("motion", "croponly")) else {"crop_size": 64})
    ours_cfg = load_config(name, over)
    base_cfg = load_config(name, {**over, "data": {"crop_store": False}})
    fam = get_family(ours_cfg.family)
    ctx = TrainContext.create(data, prep, device="cpu", workers=0, cache_dir=cache, log=lambda _m: None,
                              progress=False)
    ids = load_split(prep)["train"]
    t0 = time.perf_counter()
    info = fam.prepare(ours_cfg, ctx, ids)
    prepare_s = time.perf_counter() - t0
    ours, base = fam.train_dataset(ours_cfg, ctx, ids), fam.train_dataset(base_cfg, ctx, ids)
    keys = [SampleKey(i % len(ids), 1000 + i) for i in range(max(n_ours, n_base))]
    _time(ours, keys[:8])  # warm: file cache, index, imports
    _time(base, keys[:2])
    best_o = best_b = float("inf")
    for _ in range(repeats):  # alternated, best of each (shared machines are noisy)
        best_o = min(best_o, _time(ours, keys[:n_ours]) / n_ours)
        best_b = min(best_b, _time(base, keys[:n_base]) / n_base)
    diffs = [_diff(ours[k], base[k]) for k in keys[:16]]
    crops_per_sample = getattr(ours_cfg.model, "nseg", 1) if ours_cfg.family == "instance" else 1
    geometry = (f"expand crop_area {ours_cfg.data.crop_area}, {ours_cfg.model.image_size} px"
                if ours_cfg.family == "dual_stream" else
                f"pad {ours_cfg.data.pad}, {ours_cfg.model.crop_size} px, nseg {ours_cfg.model.nseg}")
    return {"name": f"train_pipeline_{name}", "ours_s": 1000 * best_o, "baseline_s": 1000 * best_b,
            "ratio": best_b / best_o,
            "details": {"unit": "seconds per 1000 training samples, one process (= per DataLoader worker)",
                        "geometry": geometry, "crops_per_sample": crops_per_sample,
                        "samples_per_s_per_worker": {"ours": 1 / best_o, "baseline": 1 / best_b},
                        "samples_timed": {"ours": n_ours, "baseline": n_base}, "repeats": repeats,
                        "mean_abs_diff_levels": float(np.mean(diffs)), "prepare_s": prepare_s,
                        "store": {k: v for k, v in info.items() if k.startswith("crop_store")},
                        "ours": "data.crop_store: true (JPEG crops in camera shards, motion map cached)",
                        "baseline": "data.crop_store: false (full frame decoded per crop, motion map per sample)"}}


def run(quick: bool = False) -> list[dict[str, Any]]:
    import tempfile

    from benchmarks.bench_train import prepared
    from lib.io import read_json
    from lib.paths import artifacts_dir

    preset = "tiny" if quick else "paper_shape"
    t0 = time.perf_counter()
    data, prep = prepared(preset, n_val=8)
    data_s = time.perf_counter() - t0
    frames = sorted(data.glob("*/S*/c*/img1/*.jpg"))
    sizes = {"videos_bytes": sum(p.stat().st_size for p in data.glob("*/S*/c*/vdo.avi")),
             "frames_bytes": sum(p.stat().st_size for p in frames), "frames": len(frames)}
    train = read_json(data / "train-tracks.json")
    boxes = np.array([b for t in train.values() for b in t["boxes"]], dtype=float)
    per_track, source = real_boxes_per_track()
    real_crops = {"train": REAL_TRAIN_TRACKS * per_track, "test": REAL_TEST_TRACKS * per_track}
    n_ours, n_base, repeats = (40, 10, 1) if quick else (400, 60, 2)
    base = artifacts_dir() / "tmp"
    base.mkdir(parents=True, exist_ok=True)
    out = []
    with tempfile.TemporaryDirectory(prefix="bench_train_pipeline_", dir=base) as d:
        for name in PAPER:
            r = bench_config(name, data, prep, Path(d) / "cache", n_ours, n_base, repeats, small=quick)
            bpc = r["details"]["store"].get("crop_store_bytes_per_crop")
            if bpc:
                r["details"]["store_bytes_real"] = {k: int(bpc * v) for k, v in real_crops.items()}
            out.append(r)
    ratios = [r["ratio"] for r in out]
    for r in out:
        r["details"]["input"] = {"preset": preset, "data_root": str(data), "prepare_data_s": data_s, **sizes,
                                 "train_tracks": len(train), "train_boxes": len(boxes),
                                 "box_median_wh": [float(np.median(boxes[:, 2])), float(np.median(boxes[:, 3]))],
                                 "real_boxes_per_track": per_track, "real_boxes_source": source,
                                 "min_ratio_of_the_eight": min(ratios)}
    return out


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
