"""The generic trainer: deterministic data order, schedule, outputs, resume after a kill, DDP on two CPU processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lib.families import load_config
from lib.families.dual_stream.schedule import epochs_to_steps, warmup_step_decay
from lib.paths import ROOT  # noqa: E402
from lib.train import train
from lib.train.sampler import StepBatchSampler, global_batch_keys
from lib.train.validate import random_mrr, retrieval_metrics
from tests.helpers.track_dataset import make_mini_dataset, tiny_overrides  # noqa: E402

PY = sys.executable
EFF = "params/motion_effb3_NOCLS_nlpaug_320.yaml"
SE3 = "params/motion_SE_3CLS_nonlpaug_288.yaml"


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_mini_dataset(tmp_path_factory.mktemp("mini"))


def _cli(args: list[str], env_extra: dict[str, str] | None = None, torchrun: int = 0) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    env.update(env_extra or {})
    if torchrun:
        cmd = [PY, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={torchrun}", "-m", "lib.train"]
    else:
        cmd = [PY, "-m", "lib.train"]
    return subprocess.run(cmd + args + ["--no-progress"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


# --- pure functions ---------------------------------------------------------------------------------------------
def test_sampler_is_a_function_of_seed_and_step_and_shards_the_global_batch() -> None:
    a = [global_batch_keys(10, 4, seed=3, step=s) for s in range(5)]
    b = [global_batch_keys(10, 4, seed=3, step=s) for s in range(5)]
    assert a == b
    assert a != [global_batch_keys(10, 4, seed=4, step=s) for s in range(5)]
    # an epoch (2 steps of 4 out of 10) never repeats a track inside a batch or an epoch
    for e in range(2):
        idx = [k.index for s in (2 * e, 2 * e + 1) for k in a[s]]
        assert len(set(idx)) == 8
    # two ranks together see exactly the one-process batch; a resumed sampler continues where it stopped
    one = list(StepBatchSampler(10, 4, 3, 0, 5))
    r0 = list(StepBatchSampler(10, 4, 3, 0, 5, rank=0, world_size=2))
    r1 = list(StepBatchSampler(10, 4, 3, 0, 5, rank=1, world_size=2))
    assert [x + y for x, y in zip(r0, r1)] == one
    assert list(StepBatchSampler(10, 4, 3, 2, 5)) == one[2:]
    with pytest.raises(ValueError, match="divisible"):
        StepBatchSampler(10, 4, 3, 0, 5, rank=0, world_size=3)
    with pytest.raises(ValueError, match="fewer than one batch"):
        StepBatchSampler(3, 4, 3, 0, 5)


def test_published_schedule_in_steps() -> None:
    """Part One (P1.4): no drop_last, so a pass over the 2398-track split is ceil(2398/64) = 38 steps; the x0.1 decay
    every 240 passes counts from the END of the 40-pass warm-up; this is what the paper configuration builds."""
    from lib.train.sampler import steps_per_epoch

    spe = steps_per_epoch(2398, 64, drop_last=False)
    assert spe == 38 and steps_per_epoch(2398, 64) == 37
    warm, decay = epochs_to_steps(40, spe), epochs_to_steps(240, spe)
    assert (warm, decay, epochs_to_steps(1200, spe)) == (1520, 9120, 45600)
    f = warmup_step_decay(warm, 1e-7 / 0.01, decay, 0.1)
    assert f(0) == pytest.approx(1e-5)
    assert f(warm // 2) == pytest.approx(0.5, abs=0.01)
    assert f(warm) == 1.0 and f(warm + decay - 1) == 1.0
    assert f(warm + decay) == pytest.approx(0.1) and f(warm + 4 * decay) == pytest.approx(1e-4)
    assert warmup_step_decay(warm, 1e-7 / 0.01, decay, 0.1, from_warmup_end=False)(decay) == pytest.approx(0.1)
    # the paper configuration's optimizer and scheduler give that learning rate at the first decay step
    from lib.families import get_family

    cfg = load_config("params/motion_SE_3CLS_nonlpaug_288.yaml")
    assert cfg.train.drop_last is False and cfg.train.lr_decay_from == "warmup_end"
    opt, sched = get_family("dual_stream").optimizer_and_scheduler(torch.nn.Linear(2, 2), cfg, spe)
    lam = sched.lr_lambdas[0]
    assert lam(warm + decay - 1) * cfg.train.lr == pytest.approx(0.01)
    assert lam(warm + decay) * cfg.train.lr == pytest.approx(0.001)
    assert get_family("dual_stream").total_steps(cfg, spe) == 45600


def test_sampler_keeps_the_last_partial_batch_without_drop_last() -> None:
    keys = [list(StepBatchSampler(10, 4, 3, 0, 6, drop_last=False))]
    sizes = [len(b) for b in keys[0]]
    assert sizes == [4, 4, 2, 4, 4, 2]  # ceil(10 / 4) = 3 steps a pass
    assert len({k.index for b in keys[0][:3] for k in b}) == 10  # one pass sees every sample once
    full = list(StepBatchSampler(10, 4, 3, 0, 6))
    assert [k.index for k in full[0]] == [k.index for k in keys[0][0]]  # the first batch is the same either way
    r0 = list(StepBatchSampler(10, 4, 3, 0, 3, rank=0, world_size=2, drop_last=False))
    r1 = list(StepBatchSampler(10, 4, 3, 0, 3, rank=1, world_size=2, drop_last=False))
    assert [x + y for x, y in zip(r0, r1)] == keys[0][:3] and [len(b) for b in r0] == [2, 2, 1]
    from lib.train.sampler import steps_per_epoch

    assert steps_per_epoch(9, 4, drop_last=False) == 2  # a last batch of one sample is dropped (BatchNorm)


def test_retrieval_metrics_and_random_baseline() -> None:
    s = np.array([[0.9, 0.1, 0.0], [0.8, 0.5, 0.1], [0.3, 0.3, 0.3]])
    m = retrieval_metrics(s)  # ranks 0, 1, 2 (ties keep gallery order: the official rule)
    assert m["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    assert m["r1"] == pytest.approx(1 / 3) and m["r5"] == 1.0
    assert random_mrr(3) == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    rng = np.random.default_rng(0)
    sims = np.mean([retrieval_metrics(rng.random((50, 50)))["mrr"] for _ in range(200)])
    assert sims == pytest.approx(random_mrr(50), rel=0.05)


# --- training runs ----------------------------------------------------------------------------------------------
def test_train_writes_every_output(mini: tuple[Path, Path], tmp_path: Path) -> None:
    data, prep = mini
    cfg = load_config(SE3, tiny_overrides())
    m = train(cfg, data, prep, tmp_path, progress=False)
    for f in ("best.safetensors", "last.safetensors", "state.pt", "metrics.json", "history.json", "curves.png",
              "run_info.json"):
        assert (tmp_path / f).stat().st_size > 0, f
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["steps"] == 4 and saved["n_val"] == 4 and saved["n_train"] == 12
    assert saved["random_mrr"] == pytest.approx(random_mrr(4))
    assert 0 < saved["val_mrr"] <= 1 and saved["best_step"] in (2, 4)
    assert saved["samples_per_s"] > 0 and saved["train_time_s"] > 0
    assert saved == json.loads(json.dumps(m))
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    assert state["step"] == 4 and len(state["rng"]) == 1
    hist = json.loads((tmp_path / "history.json").read_text())
    assert [h["step"] for h in hist if "val_mrr" in h] == [2, 4]
    assert all("loss_id_car" in h and "loss_id_share_text" in h for h in hist if "loss" in h)
    # a finished run started again does nothing more and keeps its weights
    before = _weights(tmp_path / "last.safetensors")
    m2 = train(cfg, data, prep, tmp_path, progress=False)
    assert m2["steps_this_run"] == 0 and m2["val_mrr"] == m["val_mrr"]
    after = _weights(tmp_path / "last.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before)
    # another configuration refuses to resume from this folder
    # another configuration (an edited YAML) refuses to resume from this folder when asked to ...
    other = load_config(SE3, {**tiny_overrides(), "train": {**tiny_overrides().get("train", {}), "lr": 0.5}})
    with pytest.raises(RuntimeError, match="another configuration"):
        train(other, data, prep, tmp_path, progress=False, on_config_change="error")
    # ... and by default restarts from scratch, announcing it, without any output of the old run left
    logs: list[str] = []
    m3 = train(other, data, prep, tmp_path, progress=False, log=logs.append)
    assert any("training from scratch" in line for line in logs)
    assert m3["steps_this_run"] == 4 and m3["steps"] == 4
    fresh = _weights(tmp_path / "last.safetensors")
    assert any(not torch.equal(before[k], fresh[k]) for k in before)


class _Killed(BaseException):
    pass


def test_killed_run_resumes_to_the_same_weights(mini: tuple[Path, Path], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Dropout on (RNG in play), 6 steps, checkpoints every 2: a run killed right after step 3 (the trainer's fault
    injection calls ``os._exit``; here it unwinds without any cleanup) and started again ends bit-identical to an
    uninterrupted run, with the same history and best step."""
    data, prep = mini
    ov = tiny_overrides(max_steps=6, val_every=2, ckpt_every=2)
    ov["model"]["head_dropout"] = 0.3
    cfg = load_config(EFF, ov)
    full, cut = tmp_path / "full", tmp_path / "cut"
    ma = train(cfg, data, prep, full, progress=False)

    def die(code: int) -> None:
        raise _Killed(code)

    monkeypatch.setattr(os, "_exit", die)
    monkeypatch.setenv("CFNL_TRAIN_FAIL_AT_STEP", "3")
    with pytest.raises(_Killed):
        train(cfg, data, prep, cut, progress=False)
    monkeypatch.delenv("CFNL_TRAIN_FAIL_AT_STEP")
    assert torch.load(cut / "state.pt", weights_only=True)["step"] == 2
    torch.manual_seed(12345)  # whatever the process did before, the restored RNG state decides
    mb = train(cfg, data, prep, cut, progress=False)
    a, b = _weights(full / "last.safetensors"), _weights(cut / "last.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert ma["val_mrr"] == mb["val_mrr"] and ma["best_step"] == mb["best_step"] and mb["resumed_from"] == 2
    ha, hb = (json.loads((d / "history.json").read_text()) for d in (full, cut))
    strip = lambda h: [{k: v for k, v in x.items() if not k.endswith("time_s")} for x in h]  # noqa: E731
    assert strip(ha) == strip(hb)


def test_killed_process_resumes_from_its_checkpoint(mini: tuple[Path, Path], tmp_path: Path) -> None:
    """The same through the CLI with a real process death (``os._exit`` after step 3): the restarted command
    continues from step 2 and finishes."""
    data, prep = mini
    ov = tiny_overrides(max_steps=4, val_every=2, ckpt_every=2)
    args = [EFF, "--data-root", str(data), "--prep-dir", str(prep), "--override", json.dumps(ov), "--out",
            str(tmp_path)]
    r = _cli(args, {"CFNL_TRAIN_FAIL_AT_STEP": "3"})
    assert r.returncode == 17, r.stderr[-3000:]
    assert torch.load(tmp_path / "state.pt", weights_only=True)["step"] == 2
    assert not (tmp_path / "metrics.json").exists()
    r = _cli(args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming" in r.stdout + r.stderr
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["steps"] == 4 and m["resumed_from"] == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="channels-last and bf16 are CUDA speed switches")
def test_cuda_speed_switches_train_the_same_model(mini: tuple[Path, Path], tmp_path: Path) -> None:
    """``train.channels_last`` and ``train.amp`` on CUDA: same steps, finite losses, weights close to float32's."""
    data, prep = mini
    plain = train(load_config(SE3, tiny_overrides()), data, prep, tmp_path / "plain", device="cuda", progress=False)
    fast_cfg = load_config(SE3, tiny_overrides(channels_last=True, amp=True))
    fast = train(fast_cfg, data, prep, tmp_path / "fast", device="cuda", progress=False)
    assert fast["steps"] == plain["steps"] and fast["amp"] is True
    a, b = _weights(tmp_path / "plain" / "last.safetensors"), _weights(tmp_path / "fast" / "last.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.isfinite(b[k]).all() for k in b)
    assert max(float((a[k].float() - b[k].float()).abs().max()) for k in a if a[k].is_floating_point()) < 0.05
