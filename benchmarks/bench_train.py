"""Training throughput of a Part One CPU variant with and without the training caches (``make bench``).

``train_samples_per_s``: ``motion_effb3_NOCLS_nlpaug_320_cpu`` trained by ``lib.train`` for a few steps on the
``default`` synthetic preset (``tiny`` when quick), same seed, same DataLoader workers, measured as training
samples per second over the optimizer steps (data loading included, validation excluded), best of two alternated
runs each. Ours: the crop and
motion-map caches (uint8 arrays at model input size in ``PREP/cache``) and the cached frozen text features. Baseline:
the original's way, a full frame decoded, cropped and resized per sample, the motion map JPEG decoded per sample and
the frozen text encoder run on every batch. ``ours_s`` / ``baseline_s`` are seconds per 1000 samples. The details
also give the data loading alone (no model) both ways, and the one-off cache build time.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

CONFIG = "motion_effb3_NOCLS_nlpaug_320_cpu"


def prepared(preset: str, n_val: int | None = None, name: str | None = None, **generator: Any) -> tuple[Path, Path]:
    """Data root and preparation folder of a synthetic preset (generated and preprocessed when missing);
    ``n_val`` val tracks in the split (default 12 for ``tiny``, else 100). ``name`` (default: the preset) names the
    folders under ``artifacts/data`` and ``artifacts/prep``; ``generator`` overrides the preset's settings
    (``n_train=200``) when the data is generated."""
    from lib.frames import extract_dataset
    from lib.motion.maps import build_motion_maps
    from lib.paths import data_dir, prep_dir
    from lib.prep import nlpaug_train_tracks, split_file
    from lib.text.augment import prepare_text
    from lib.text.split import write_split

    root, prep = data_dir(name or preset), prep_dir(name or preset)
    if not (root / "dataset.json").exists():
        from lib.synthetic import generate

        generate(preset=preset, seed=0, out=root, **generator)
    extract_dataset(root, only_referenced=False, progress=False)  # motion-map backgrounds need every frame
    if not split_file(prep).exists():
        write_split(root, prep, n_val=n_val or (12 if preset == "tiny" else 100))
    if not nlpaug_train_tracks(prep).exists():
        prepare_text(root, prep)
    report = build_motion_maps(root, prep / "motion" / "published", progress=False)
    if report.problems:
        raise RuntimeError(f"motion maps of {root}: {report.problems[:3]}")
    return root, prep


def _data_only(cfg: Any, data: Path, prep: Path, cache_dir: Path, n: int) -> float:
    """Samples per second of the dataset alone (no model), in this process."""
    from lib.families.base import SampleKey, TrainContext, get_family
    from lib.prep import load_split

    fam = get_family(cfg.family)
    ctx = TrainContext.create(data, prep, device="cpu", workers=0, cache_dir=cache_dir, log=lambda _m: None)
    ds = fam.train_dataset(cfg, ctx, load_split(prep)["train"])
    t0 = time.perf_counter()
    for i in range(n):
        ds[SampleKey(i % len(ds), i)]
    return n / (time.perf_counter() - t0)


def bench_train(quick: bool) -> dict[str, Any]:
    import torch

    from lib.families import load_config
    from lib.families.base import TrainContext, get_family
    from lib.prep import load_split
    from lib.train import train

    preset = "tiny" if quick else "default"
    data, prep = prepared(preset)
    steps = 6 if quick else 30
    repeats = 1 if quick else 2
    common = {"train": {"max_steps": steps, "val_every": 10_000, "ckpt_every": 10_000, "log_every": 10_000,
                        "val_frames_per_track": 1}}
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        cache_dir = Path(tmp) / "cache"  # a fresh cache: its build time is measured too
        ours_cfg = load_config(CONFIG, common)
        base_cfg = load_config(CONFIG, {**common, "data": {"cache_crops": False, "cache_text": False}})
        ctx = TrainContext.create(data, prep, device="cpu", cache_dir=cache_dir, log=lambda _m: None)
        split = load_split(prep)
        t0 = time.perf_counter()
        get_family(ours_cfg.family).prepare(ours_cfg, ctx, split["train"] + split["val"])
        build_s = time.perf_counter() - t0
        results: dict[str, dict[str, Any]] = {}
        for rep in range(repeats):  # alternate the two, keep each one's best run (shared machines are noisy)
            for name, cfg in (("ours", ours_cfg), ("baseline", base_cfg)):
                m = train(cfg, data, prep, Path(tmp) / f"{name}{rep}", progress=False, log=lambda _m: None,
                          cache_dir=cache_dir)
                if name not in results or m["samples_per_s"] > results[name]["samples_per_s"]:
                    results[name] = m
        n_data = 64 if quick else 256
        data_ours = _data_only(ours_cfg, data, prep, cache_dir, n_data)
        data_base = _data_only(base_cfg, data, prep, cache_dir, n_data)
    ours_sps, base_sps = results["ours"]["samples_per_s"], results["baseline"]["samples_per_s"]
    return {"name": f"train_samples_per_s_{CONFIG}_{preset}", "ours_s": 1000.0 / ours_sps,
            "baseline_s": 1000.0 / base_sps, "ratio": ours_sps / base_sps,
            "details": {"unit": "seconds per 1000 training samples", "preset": preset, "steps": steps,
                        "repeats": repeats, "torch_threads": torch.get_num_threads(),
                        "batch_size": ours_cfg.train.batch_size, "image_size": ours_cfg.model.image_size,
                        "samples_per_s": {"ours": ours_sps, "baseline": base_sps},
                        "data_only_samples_per_s": {"ours": data_ours, "baseline": data_base},
                        "cache_build_s": build_s, "workers": results["ours"].get("workers"),
                        "ours": "crop + motion-map caches (uint8 at input size) and cached frozen text features",
                        "baseline": "frame decoded, cropped and resized per sample; motion map decoded per sample; "
                                    "frozen text encoder run on every batch (the original's way)"}}


def run(quick: bool = False) -> list[dict[str, Any]]:
    return [bench_train(quick)]


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
