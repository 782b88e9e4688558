"""The generic training loop, shared by every family (see :mod:`lib.families.base` for the protocol).

``train(cfg, data_root, prep_dir, out_dir)`` trains one configuration: it reads ``PREP/split.json``, lets the
family build its caches (rank 0) and dataset, then runs ``total_steps`` optimizer steps on global batches in a
deterministic order (``lib.train.sampler``), validating (val MRR over the whole val split) every ``val_every``
steps and checkpointing every ``ckpt_every`` steps. A run whose ``out_dir`` holds a ``state.pt`` continues from it
and ends with the same weights as an uninterrupted run. Under ``torchrun`` every rank trains its shard of each
global batch with DistributedDataParallel; rank 0 validates and writes the files.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from lib import distributed as D
from lib.cityflow import check_tracks
from lib.distributed import autocast
from lib.errors import ConfigMismatchError, InputError
from lib.families.base import TrainContext, get_family
from lib.io import FORCE_ENV, content_hash, file_hash, force_requested, write_json, write_run_info
from lib.prep import load_split, nlpaug_train_tracks
from lib.train import checkpoint as ckpt
from lib.train.sampler import StepBatchSampler, steps_per_epoch
from lib.train.validate import random_mrr, validate

if TYPE_CHECKING:
    from lib.config import RunConfig

RUN_OUTPUTS = ("state.pt", "best.safetensors", "last.safetensors", "metrics.json", "history.json", "curves.png",
               "val_ranks.json")
CFNL_FORCE_NOTE = f"{FORCE_ENV}=1 (a forced re-run)"
FAIL_AT_STEP_ENV = "CFNL_TRAIN_FAIL_AT_STEP"
"""Fault injection for the resume tests: the process dies (``os._exit``) after completing this step."""


def _config_fingerprint(cfg: RunConfig, data_key: str | None = None) -> str:
    """The resume key: the configuration (less what may change between a run and its continuation without
    changing the trajectory) and, when given, the content key of the training data (tracks and split)."""
    d = cfg.to_dict()
    for k in ("max_steps", "epochs", "val_every", "val_every_epochs", "ckpt_every", "log_every", "workers"):
        d.get("train", {}).pop(k, None)
    if data_key is not None:
        d["_data"] = data_key
    return json.dumps(d, sort_keys=True)


def training_context(ctx: TrainContext, other_views: bool) -> TrainContext:
    """``ctx`` itself, or (``train.nl_other_views``) a copy whose training tracks' ``nl`` include their other views'
    sentences (the validation queries keep reading ``ctx``)."""
    if not other_views:
        return ctx
    import dataclasses

    from lib.cityflow import with_other_views

    out = dataclasses.replace(ctx)
    out.__dict__["train_tracks"] = with_other_views(ctx.train_tracks)  # the cached_property's slot
    return out


def colour_groups(ctx: TrainContext, train_ids: list[str], n_samples: int) -> list[int]:
    """Sample ``i`` (track ``train_ids[i % n]``, as both families index) -> the index of the main colour its
    sentences name (``lib.text.attributes.parse_track``; no colour named is a group of its own)."""
    from lib.text.attributes import parse_track

    tracks = ctx.train_tracks
    colour = {u: parse_track(tracks[u].get("nl") or []).colour or "" for u in train_ids}
    names = sorted(set(colour.values()))
    return [names.index(colour[train_ids[i % len(train_ids)]]) for i in range(n_samples)]


def train(cfg: RunConfig, data_root: str | os.PathLike[str], prep_dir: str | os.PathLike[str],
          out_dir: str | os.PathLike[str], max_steps: int | None = None, workers: int | None = None,
          device: str | torch.device | None = None, log: Callable[[str], None] = print,
          progress: bool = True, cache_dir: str | os.PathLike[str] | None = None,
          on_config_change: str = "restart") -> dict[str, Any]:
    """Train ``cfg`` and return its metrics (also written to ``out_dir/metrics.json``). ``cache_dir`` defaults to
    ``prep_dir/cache``.

    A ``state.pt`` in ``out_dir`` of the same configuration is resumed. One written for another configuration
    (the YAML was edited, so the pipeline re-runs this step) is, with ``on_config_change="restart"``, announced and
    its outputs removed before training starts from scratch; with ``"error"`` it is an error."""
    if on_config_change not in ("restart", "error"):
        raise ValueError(f"on_config_change must be 'restart' or 'error', got {on_config_change!r}")
    t_start = time.perf_counter()
    info = D.init_distributed(device)
    dev = info.device
    out = Path(out_dir)
    tcfg = cfg.train
    n_workers = workers if workers is not None else (tcfg.workers if tcfg.workers is not None else None)
    ctx = TrainContext.create(data_root, prep_dir, device=dev, workers=n_workers, rank=info.rank,
                              world_size=info.world_size, log=log if info.is_main else (lambda _m: None),
                              progress=progress,
                              cache_dir=Path(cache_dir) if cache_dir is not None else None)
    fam = get_family(cfg.family)
    split = load_split(ctx.prep_dir)
    train_ids, val_ids = list(split["train"]), list(split["val"])
    if tcfg.train_on == "all":  # every track of the file, in file order (Part Two, published): val is training-fit
        train_ids = list(ctx.train_tracks)
    missing = [u for u in train_ids + val_ids if u not in ctx.train_tracks]
    if missing:
        raise InputError(f"{ctx.prep_dir / 'split.json'}: {len(missing)} track id(s) not in "
                       f"{ctx.data_root.train_tracks}, e.g. {missing[:3]}")
    # the validator's per-track checks before the first step: a bad track is one line naming file, track, field
    data_check = check_tracks({u: ctx.train_tracks[u] for u in train_ids + val_ids}, ctx.data_root.train_tracks,
                              require_nl=True, data_root=ctx.data_root.root)
    if data_check["boxes_partly_outside"] and info.is_main:
        n_tracks = data_check["tracks_with_boxes_partly_outside"]
        ctx.log(f"note: {data_check['boxes_partly_outside']} box(es) of {n_tracks} track(s) lie partly outside their "
                "frame: cropped by the family's rule (counted in metrics.json)")
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_run_info(out, {"config": cfg.to_dict(), "source": cfg.source, "data_root": str(ctx.data_root.root),
                             "prep_dir": str(ctx.prep_dir), "max_steps": max_steps, "world_size": info.world_size,
                             "device": str(dev)})

    # caches (rank 0 builds, the others wait), dataset, model
    t0 = time.perf_counter()
    prep_info = fam.prepare(cfg, ctx, list(dict.fromkeys(train_ids + val_ids))) if info.is_main else {}
    D.barrier()
    prepare_s = time.perf_counter() - t0
    dataset = fam.train_dataset(cfg, training_context(ctx, tcfg.nl_other_views), train_ids)
    model_kwargs = dict(getattr(dataset, "model_kwargs", {}))
    spe = steps_per_epoch(len(dataset), tcfg.batch_size, tcfg.drop_last)
    total = max_steps if max_steps is not None else fam.total_steps(cfg, spe)
    torch.manual_seed(tcfg.seed)
    model = fam.build_model(cfg, **model_kwargs).to(dev)
    optimizer, scheduler = fam.optimizer_and_scheduler(model, cfg, spe)
    use_amp = bool(tcfg.amp) and dev.type == "cuda"
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True

    # resume
    state_path = out / "state.pt"
    start_step, best_mrr, best_step, history, train_time = 0, -math.inf, -1, [], 0.0
    # what the run learns from: the annotation entries of its tracks, its split and the family's text files
    text_files = [p for p in (nlpaug_train_tracks(ctx.prep_dir),) if p.exists()]
    data_key = content_hash({"train": [[u, ctx.train_tracks[u]] for u in train_ids],
                             "val": [[u, ctx.train_tracks[u]] for u in val_ids],
                             "text": [file_hash(p) for p in text_files]})
    fingerprint = _config_fingerprint(cfg, data_key)
    if force_requested() and state_path.exists():
        ctx.log(f"{CFNL_FORCE_NOTE}: {state_path} is not resumed, training starts from scratch")
        D.barrier()
        if info.rank == 0:
            for name in RUN_OUTPUTS:
                (out / name).unlink(missing_ok=True)
        D.barrier()
    state: dict[str, Any] | None = None
    if state_path.exists() and not force_requested():
        state = ckpt.load_state(state_path, map_location="cpu")
        if state.get("fingerprint") != fingerprint:
            if on_config_change == "error":
                raise ConfigMismatchError(f"{state_path}: belongs to another configuration than {cfg.name} "
                                          f"({cfg.source}); use another --out folder or delete {state_path} to "
                                          "start again")
            ctx.log(f"{state_path} was written for another configuration than {cfg.source} or other training data "
                    "(one of them changed): removing that run's outputs and training from scratch")
            D.barrier()
            if info.rank == 0:
                for name in RUN_OUTPUTS:
                    (out / name).unlink(missing_ok=True)
            D.barrier()
            state = None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_step, best_mrr, best_step = int(state["step"]), float(state["best_mrr"]), int(state["best_step"])
        history, train_time = list(state["history"]), float(state["train_time_s"])
        rngs = state["rng"]
        ckpt.restore_rng(rngs[min(info.rank, len(rngs) - 1)])
        if len(rngs) != info.world_size:
            ctx.log(f"note: {state_path} was written by {len(rngs)} process(es), this run has {info.world_size}: "
                    "RNG streams are reassigned")
        ctx.log(f"resuming {cfg.name} from step {start_step} ({state_path})")
    model.to(dev)
    if tcfg.channels_last and dev.type == "cuda":
        model.to(memory_format=torch.channels_last)

    train_model: nn.Module = model
    if info.enabled:
        D.convert_batchnorm(model, dev)
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None)

    n_val = len(val_ids)
    rand_mrr = random_mrr(n_val)
    val_every = tcfg.val_every or max(1, int(round(tcfg.val_every_epochs * spe)))
    ckpt_every = tcfg.ckpt_every or val_every
    rule = tcfg.checkpoint
    selector = ckpt.CheckpointRule(rule, spe, val_every, tcfg.lowest_loss_save_every)
    if state is not None and "selector" in state:
        selector.load_state_dict(state["selector"])
    groups = colour_groups(ctx, train_ids, len(dataset)) if tcfg.colour_groups else None
    sampler = StepBatchSampler(len(dataset), tcfg.batch_size, tcfg.seed, start_step, total, info.rank,
                               info.world_size, drop_last=tcfg.drop_last, groups=groups,
                               group_size=tcfg.colour_groups)
    n_workers = ctx.workers
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, collate_fn=fam.collate, num_workers=n_workers,
        pin_memory=dev.type == "cuda", persistent_workers=False, generator=torch.Generator(),
        prefetch_factor=4 if n_workers > 0 else None)
    ctx.log(f"training {cfg.name} ({cfg.family}) on {dev} x{info.world_size}: {len(dataset)} train / {n_val} val "
            f"tracks, batch {tcfg.batch_size}, {spe} steps/epoch, steps {start_step}->{total}, "
            f"val every {val_every}, checkpoint every {ckpt_every}, workers {n_workers}")

    def checkpoint(step: int) -> None:
        rngs = [ckpt.capture_rng()]
        if info.enabled:
            gathered: list[Any] = [None] * info.world_size
            torch.distributed.all_gather_object(gathered, rngs[0])
            rngs = gathered
        if not info.is_main:
            return
        ckpt.save_weights(out / "last.safetensors", model, cfg, step, model_kwargs)
        ckpt.save_state(state_path, {
            "step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "best_mrr": best_mrr, "best_step": best_step,
            "history": history, "train_time_s": train_time, "rng": rngs, "fingerprint": fingerprint,
            "selector": selector.state_dict(),
            "world_size": info.world_size})
        write_json(out / "history.json", history)

    loss_factor = getattr(fam, "loss_factor", None)
    fail_at = int(os.environ.get(FAIL_AT_STEP_ENV, "-1"))
    step = start_step
    bar = None
    if progress and info.is_main and total > start_step:
        from lib.progress import progress_bar

        bar = progress_bar(total=total, initial=start_step, desc=f"train {cfg.name}", unit="step", leave=False)
    pure_train_s = 0.0
    cpu_start = time.process_time()
    val_cpu_s = 0.0
    t_step = time.perf_counter()
    train_model.train()
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    for batch in loader:
        with autocast(dev, use_amp):
            loss, logs = fam.compute_loss(train_model, batch, step)
        if loss_factor is not None:  # optional family hook: a factor on the loss by step (Part Two warm-up)
            f = float(loss_factor(cfg, step, spe, len(dataset)))
            loss, logs = loss * f, {**logs, "loss_factor": f}
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{cfg.name}: non-finite loss {loss.item()} at step {step} ({logs})")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if tcfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
        lr = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        step += 1
        dt = time.perf_counter() - t_step
        pure_train_s += dt
        train_time += dt
        if bar is not None:
            bar.update(1)
        if info.is_main and selector.observe(step, loss.detach(), logs):
            best_step = step
            ckpt.save_weights(out / "best.safetensors", model, cfg, step, model_kwargs,
                              extra={"checkpoint_rule": rule, **selector.record()})
        if step % tcfg.log_every == 0 or step == total or step == start_step + 1:
            vals = {"loss": float(loss.item()), **{k: float(v) for k, v in logs.items()}}
            if info.enabled:  # the global-batch values: mean over ranks of each rank's (shard) values
                buf = torch.tensor(list(vals.values()), dtype=torch.float64, device=dev)
                torch.distributed.all_reduce(buf)
                vals = dict(zip(vals, (buf / info.world_size).tolist()))
            rec = {"step": step, "lr": lr, **vals}
            history.append(rec)
            if bar is not None:
                bar.set_postfix(loss=f"{rec['loss']:.3f}")
        if step % val_every == 0 or step == total:
            if info.is_main:
                c0 = time.process_time()
                res = validate(fam, model, cfg, ctx, val_ids)
                rec_val = {"step": step, "val_mrr": res["mrr"], "val_r1": res["r1"], "val_r5": res["r5"],
                           "val_r10": res["r10"], "val_time_s": res["val_time_s"]}
                if getattr(tcfg, "original_val", False) and hasattr(fam, "original_validation"):
                    orig = fam.original_validation(model, cfg, ctx, val_ids)
                    rec_val.update({"val_top1_original": orig["top1"], "val_top5_original": orig["top5"]})
                val_cpu_s += time.process_time() - c0
                history.append(rec_val)
                ctx.log(f"step {step}/{total}: val MRR {res['mrr']:.4f} (random {rand_mrr:.4f}), "
                        f"R@1 {res['r1']:.3f}, R@5 {res['r5']:.3f} [{res['val_time_s']:.1f}s]")
                if res["mrr"] > best_mrr:
                    best_mrr = res["mrr"]
                    if rule == "best_val_mrr":
                        best_step = step
                        ckpt.save_weights(out / "best.safetensors", model, cfg, step, model_kwargs,
                                          extra={"val_mrr": res["mrr"], "checkpoint_rule": rule})
                        write_json(out / "val_ranks.json", {"step": step, "ranks": res["ranks"]})
            D.barrier()
        if step % ckpt_every == 0 or step == total:
            checkpoint(step)
        if step == fail_at:
            os._exit(17)
        t_step = time.perf_counter()
    if bar is not None:
        bar.close()

    train_cpu_s = time.process_time() - cpu_start - val_cpu_s
    ddp_diff = D.max_weight_difference(model) if info.enabled else None
    metrics: dict[str, Any] = {}
    if info.is_main:
        if not (out / "last.safetensors").exists():  # a run that had nothing left to do writes its export anyway
            ckpt.save_weights(out / "last.safetensors", model, cfg, step, model_kwargs)
        if selector.take_final(step) or not (out / "best.safetensors").exists():
            best_step = step  # the final weights (rule "final", or "lowest_loss" with its minimum after the last save)
            ckpt.save_weights(out / "best.safetensors", model, cfg, step, model_kwargs,
                              extra={"checkpoint_rule": rule, **selector.record()})
        vals = [h for h in history if "val_mrr" in h]
        n_steps_now = step - start_step
        metrics = {
            "config": cfg.name, "family": cfg.family,
            "val_mrr": (best_mrr if best_step >= 0 else None) if rule == "best_val_mrr" else (
                next((h["val_mrr"] for h in reversed(vals) if h["step"] <= best_step), None)),
            "best_val_mrr_seen": best_mrr if vals else None, "best_step": best_step,
            "checkpoint_rule": rule, "checkpoint_selection": selector.record(),
            "train_on": tcfg.train_on, "val_is_training_fit": tcfg.train_on == "all",
            "final_val_mrr": vals[-1]["val_mrr"] if vals else None,
            "val_r1": next((h["val_r1"] for h in vals if h["step"] == best_step), None),
            "val_r5": next((h["val_r5"] for h in vals if h["step"] == best_step), None),
            "random_mrr": rand_mrr, "n_train": len(dataset), "n_val": n_val,
            "steps": step, "steps_this_run": n_steps_now, "resumed_from": start_step,
            "batch_size": tcfg.batch_size, "steps_per_epoch": spe, "world_size": info.world_size,
            "train_time_s": train_time,
            "train_cpu_s_this_run": train_cpu_s, "val_cpu_s_this_run": val_cpu_s,
            "samples_per_s": (n_steps_now * tcfg.batch_size / pure_train_s) if pure_train_s > 0 else None,
            "prepare_s": prepare_s, "prepare": prep_info, "wall_time_s": time.perf_counter() - t_start,
            "device": str(dev), "amp": use_amp, "workers": n_workers, "data_check": data_check,
        }
        if ddp_diff is not None:
            metrics["ddp_max_weight_diff"] = ddp_diff
        write_json(out / "history.json", history)
        write_json(out / "metrics.json", metrics)
        from lib.train.plots import plot_curves

        plot_curves(history, out / "curves.png", title=cfg.name, random_mrr=rand_mrr)
    D.barrier()
    return metrics
