"""The prepared GPU run (``benchmarks/gpu_check.sh``): train every paper configuration briefly at paper shape, embed a
530-track test gallery, and write the throughput and the card to ``benchmarks/results/gpu_<card>.json``.

On a machine with CUDA (the default ``--size paper``):

1. data: the ``paper_shape`` synthetic preset (1920x1080, real box sizes) with 200 training tracks, frames extracted,
   split, nlpaug text and motion maps, generated once into ``artifacts/data/gpu_check`` (reused);
2. weights: local ones where ``$CFNL_MODELS_DIR`` has them; otherwise random: the backbones from timm without
   weights, the text encoders as RoBERTa folders of the published architectures (roberta-large for Part One,
   roberta-base for Part Two) with random weights and a byte-level tokenizer, written to
   ``artifacts/tmp/gpu_check_models`` (throughput does not depend on the weights' values);
3. each of the eight paper configurations trains ``--steps`` (200) steps through ``lib.train`` (crop store, the
   published batch sizes and inputs, DataLoader workers = cores - 1, pinned memory on CUDA);
4. its model embeds the gallery: the test tracks cycled to 530 tracks (the real test split's count; every frame of
   every track for Part One, the published frames for Part Two);
5. per configuration: steps/s, samples/s, crops/s of training, crops/s of the gallery, peak GPU memory; and the
   card, driver, CUDA, torch versions, the commit. The file is rewritten after every configuration (``"complete"``
   says whether all ran), so a run stopped by the 10-minute limit keeps what it measured. ``--prepare-only``
   makes the data, the random text encoders and every configuration's crop store (a few minutes, once; the timed
   run then measures training, not the store build) without training.

Without CUDA, ``--size tiny`` (what ``gpu_check.sh`` chooses there) runs the same code at tiny sizes on the CPU —
the ``tiny`` preset, 32-64 px inputs, 2-layer text encoders, 3 steps, a 53-track gallery — to prove the script
works; its file says ``"device": "cpu"`` and ``"size": "tiny"`` and holds no GPU number.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_train_pipeline import PAPER

GALLERY_TRACKS = 530


def _text_folder(base: Path, name: str, small: bool) -> Path:
    """A RoBERTa folder of the ``name`` architecture (``roberta-large`` / ``roberta-base``) with random weights."""
    folder = base / name
    if (folder / "model.safetensors").exists():
        return folder
    from transformers import AutoModel, RobertaConfig

    from tests.helpers.instance_configs import make_roberta_folder

    make_roberta_folder(folder, small=small)
    cfg = RobertaConfig.from_pretrained(str(folder))
    if name == "roberta-large" and not small:
        cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size = 1024, 24, 16, 4096
        cfg.save_pretrained(str(folder))
    AutoModel.from_config(cfg).save_pretrained(str(folder))
    return folder


def _models(small: bool) -> tuple[dict[str, str], dict[str, str]]:
    """``{text encoder name: folder}`` and how each weight was chosen (local or random)."""
    from lib.paths import artifacts_dir

    local = os.environ.get("CFNL_MODELS_DIR")
    base = artifacts_dir() / "tmp" / ("gpu_check_models_small" if small else "gpu_check_models")
    out, how = {}, {}
    for name in ("roberta-large", "roberta-base"):
        if not small and local and (Path(local) / name / "config.json").exists():
            out[name], how[name] = str(Path(local) / name), "local"
        else:
            out[name], how[name] = str(_text_folder(base, name, small)), "random"
    return out, how


def _gallery(test: dict[str, dict[str, Any]], n: int) -> dict[str, dict[str, Any]]:
    """``n`` tracks: the test tracks cycled, each copy under its own id."""
    ids = sorted(test)
    return {f"{ids[i % len(ids)]}-g{i:04d}": test[ids[i % len(ids)]] for i in range(n)}


def _link_motion_maps(prep: Path, gallery: dict[str, dict[str, Any]]) -> None:
    """Motion maps of the gallery copies: the original track's map under the copy's id."""
    from lib.prep import motion_map_file

    for u in gallery:
        src = motion_map_file(prep, "published", u.rsplit("-g", 1)[0])
        dst = motion_map_file(prep, "published", u)
        if src.exists() and not dst.exists():
            shutil.copyfile(src, dst)


def _card() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda, "cuda_available": False}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(cuda_available=True, card=p.name, memory_gib=round(p.total_memory / 2**30, 1),
                    devices=torch.cuda.device_count())
        try:
            import subprocess

            info["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                            capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            info["driver"] = None
    return info


def _config(name: str, text: dict[str, str], how: dict[str, str], small: bool, steps: int,
            batch_size: int | None) -> Any:
    """A paper configuration as the check trains it: random (or local) weights, ``steps`` steps, no validation."""
    from lib.families import load_config

    part_one = name.startswith(("motion", "croponly"))
    over: dict[str, Any] = {
        "model": {"backbone_weights": None, "text_encoder": text["roberta-large" if part_one else "roberta-base"]},
        "train": {"max_steps": steps, "val_every": 10**9, "ckpt_every": 10**9, "log_every": max(1, steps // 4)}}
    if not part_one:
        over["model"]["text_pretrained"] = how["roberta-base"] == "local"
    if small:
        over["model"].update({"image_size": 64} if part_one else {"crop_size": 64, "proj_dim": 64})
        over["train"]["batch_size"] = 4
        over["embed"] = {"batch_size": 16}
    if batch_size:
        over["train"]["batch_size"] = batch_size
    return load_config(name, over)


def prepare_stores(size: str, configs: list[str], batch_size: int | None = None) -> dict[str, Any]:
    """Build every configuration's crop store and motion-map cache ahead of the timed run (the same tracks that
    ``lib.train`` prepares, so the timed run finds them built)."""
    from benchmarks.bench_train import prepared
    from lib.families import get_family
    from lib.families.base import TrainContext

    small = size == "tiny"
    data, prep = prepared("tiny", n_val=12) if small else _gpu_data()
    text, how = _models(small)
    ctx = TrainContext.create(data, prep, device="cpu", log=print, progress=True)
    ids = sorted(ctx.train_tracks)
    out = {}
    for name in configs:
        cfg = _config(name, text, how, small, 1, batch_size)
        t0 = time.perf_counter()
        info = get_family(cfg.family).prepare(cfg, ctx, ids)
        out[name] = {"prepare_s": time.perf_counter() - t0,
                     "crop_store_bytes": info.get("crop_store_bytes"), "crop_store_crops": info.get("crop_store_crops")}
        print(f"{name}: prepared in {out[name]['prepare_s']:.1f} s", flush=True)
    return out


def check(size: str, steps: int, configs: list[str], out: Path | None, gallery_tracks: int,
          batch_size: int | None = None) -> dict[str, Any]:
    import torch

    from benchmarks.bench_train import prepared
    from lib.families import get_family, load_trained_model
    from lib.families.base import TrainContext
    from lib.io import git_commit, machine_info, read_json, write_json
    from lib.paths import ROOT, artifacts_dir
    from lib.train import train

    small = size == "tiny"
    dev = "cuda" if torch.cuda.is_available() and not small else "cpu"
    t0 = time.perf_counter()
    if small:
        data, prep = prepared("tiny", n_val=12)
    else:
        data, prep = _gpu_data()
    data_s = time.perf_counter() - t0
    text, how = _models(small)
    test = read_json(data / "test-tracks.json")
    gallery = _gallery(test, gallery_tracks)
    _link_motion_maps(prep, gallery)
    n_gallery_crops = sum(len(t["frames"]) for t in gallery.values())
    workers = max(0, min(8, (os.cpu_count() or 1) - 1))
    rows: dict[str, Any] = {}
    card = _card()
    if out is None:
        tag = re.sub(r"[^A-Za-z0-9]+", "_", card.get("card", "")).strip("_").lower() if dev == "cuda" else ""
        out = ROOT / "benchmarks" / "results" / (f"gpu_{tag}.json" if tag else f"gpu_check_{dev}_{size}.json")
    result: dict[str, Any] = {
        "size": size, "device": dev, "steps": steps, "git_commit": git_commit(), "card": card,
        "machine": machine_info(), "data_root": str(data), "prepare_data_s": data_s, "weights": how,
        "gallery_tracks": len(gallery), "gallery_crops_part_one": n_gallery_crops, "configs": rows,
        "batch_size_override": batch_size, "complete": False, "total_s": time.perf_counter() - t0}
    run_dir = artifacts_dir() / "tmp" / f"gpu_check_{size}"
    shutil.rmtree(run_dir, ignore_errors=True)
    for name in configs:
        part_one = name.startswith(("motion", "croponly"))
        cfg = _config(name, text, how, small, steps, batch_size)
        if dev == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t1 = time.perf_counter()
        m = train(cfg, data, prep, run_dir / name, workers=workers, device=dev, progress=False,
                  log=lambda _m: None)
        train_wall = time.perf_counter() - t1
        fam = get_family(cfg.family)
        model = load_trained_model(cfg, run_dir / name / "best.safetensors", device=dev)
        ctx = TrainContext.create(data, prep, device=dev, workers=workers, log=lambda _m: None, progress=False)
        t2 = time.perf_counter()
        with torch.inference_mode():
            feats = fam.embed_gallery(model, cfg, ctx, gallery)
        if dev == "cuda":
            torch.cuda.synchronize()
        embed_s = time.perf_counter() - t2
        per_sample = cfg.model.nseg if cfg.family == "instance" else 1
        sps = m.get("samples_per_s") or 0.0
        crops = (n_gallery_crops if part_one else
                 sum(len(fam.gallery_frame_indices(cfg, len(t["frames"]))) for t in gallery.values()))
        rows[name] = {"steps": m["steps"], "batch_size": cfg.train.batch_size, "train_time_s": m["train_time_s"],
                      "train_wall_s": train_wall, "prepare_s": m["prepare_s"],
                      "steps_per_s": m["steps"] / m["train_time_s"] if m["train_time_s"] else None,
                      "samples_per_s": sps, "crops_per_s": sps * per_sample,
                      "gallery_tracks": len(gallery), "gallery_crops": crops, "gallery_s": embed_s,
                      "gallery_crops_per_s": crops / embed_s, "gallery_shape": list(feats.shape),
                      "peak_gpu_memory_gib": (torch.cuda.max_memory_allocated() / 2**30) if dev == "cuda" else None,
                      "workers": m.get("workers"), "amp": m.get("amp")}
        print(f"{name}: {rows[name]['steps_per_s'] or 0:.2f} steps/s, {sps:.1f} samples/s, gallery "
              f"{rows[name]['gallery_crops_per_s']:.0f} crops/s", flush=True)
        del model
        shutil.rmtree(run_dir / name, ignore_errors=True)
        result["configs"] = rows  # written after every configuration: a run cut short keeps what it measured
        result["complete"] = len(rows) == len(configs)
        result["total_s"] = time.perf_counter() - t0
        write_json(out, result)
    print(f"written: {out} ({result['total_s']:.0f} s)")
    shutil.rmtree(run_dir, ignore_errors=True)
    return result


def _gpu_data() -> tuple[Path, Path]:
    """The paper-shape data with 200 training tracks (the published batch sizes need more than 48)."""
    from benchmarks.bench_train import prepared

    return prepared("paper_shape", n_val=20, name="gpu_check", n_train=200)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=("paper", "tiny"), default="paper")
    ap.add_argument("--steps", type=int, help="training steps per configuration (default 200; tiny: 3)")
    ap.add_argument("--configs", default=",".join(PAPER), help="comma-separated paper configurations")
    ap.add_argument("--gallery-tracks", type=int, help=f"gallery size (default {GALLERY_TRACKS}; tiny: 53)")
    ap.add_argument("--out", type=Path, help="result file (default benchmarks/results/gpu_<card>.json)")
    ap.add_argument("--prepare-only", action="store_true", help="make the data and text encoders, train nothing")
    ap.add_argument("--batch-size", type=int, help="override the published batch sizes (a paper-size smoke run on a "
                    "CPU: batch 64 of EfficientNet-B3 at 320 px needs more than 24 GB)")
    args = ap.parse_args(argv)
    tiny = args.size == "tiny"
    configs = [c for c in args.configs.split(",") if c]
    if args.prepare_only:
        prepare_stores(args.size, configs, args.batch_size)
        return 0
    check(args.size, args.steps or (3 if tiny else 200), configs, args.out,
          args.gallery_tracks or (53 if tiny else GALLERY_TRACKS), args.batch_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
