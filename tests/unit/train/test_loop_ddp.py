"""The trainer under DistributedDataParallel on two CPU processes (gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lib.families import create_model, load_config
from lib.families.base import get_family
from lib.paths import ROOT  # noqa: E402
from lib.train.sampler import global_batch_keys
from tests.helpers.track_dataset import make_mini_dataset, tiny_overrides  # noqa: E402

PY = sys.executable
SE3 = "params/motion_SE_3CLS_nonlpaug_288.yaml"


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_mini_dataset(tmp_path_factory.mktemp("mini"))


def _cli(args: list[str], torchrun: int = 0) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    cmd = [PY, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={torchrun}", "-m", "lib.train"] \
        if torchrun else [PY, "-m", "lib.train"]
    return subprocess.run(cmd + args + ["--no-progress"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def test_two_cpu_processes_match_one_process(mini: tuple[Path, Path], tmp_path: Path) -> None:
    """``torchrun --nproc_per_node 2`` (gloo), 3 steps: both ranks hold identical weights, and they match a
    one-process run on the same global batch up to float32 rounding (amplified by batch statistics of nearly
    constant channels to ~1e-4 relative in some gradients; the float64 test below shows the maths is exact). AdamW's
    epsilon is raised so that gradients that are zero up to rounding (biases in front of a batch norm) are not blown
    up to +-lr by Adam's normalisation. Weights move by up to ~1e-3 in these 3 steps (lr 1e-3) and agree to 1e-4."""
    data, prep = mini
    ov = tiny_overrides(max_steps=3, val_every=3, ckpt_every=3, adam_eps=1.0)
    args = [SE3, "--data-root", str(data), "--prep-dir", str(prep), "--override", json.dumps(ov)]
    r = _cli(args + ["--out", str(tmp_path / "one")])
    assert r.returncode == 0, r.stderr[-3000:]
    r = _cli(args + ["--out", str(tmp_path / "two")], torchrun=2)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert m["world_size"] == 2 and m["ddp_max_weight_diff"] == 0.0
    cfg = load_config(SE3, ov)
    torch.manual_seed(cfg.train.seed)  # the trainer's initialisation
    from lib.families.weights import read_metadata

    model_kwargs = json.loads(read_metadata(tmp_path / "one" / "last.safetensors")["model_kwargs"])
    w0 = create_model(cfg, **model_kwargs).state_dict()  # NUM_CLASS = the whole train-tracks file (published)
    a, b = _weights(tmp_path / "one" / "last.safetensors"), _weights(tmp_path / "two" / "last.safetensors")
    moved = 0
    for k in a:
        if not a[k].is_floating_point():
            assert torch.equal(a[k], b[k]), k
            continue
        tol = 1e-4 * max(1.0, a[k].abs().max().item())
        assert (a[k] - b[k]).abs().max().item() <= tol, (k, (a[k] - b[k]).abs().max().item())
        moved += (a[k] - w0[k]).abs().max().item() > 2e-4
    assert moved > 50
    la, lb = ([h["loss"] for h in json.loads((tmp_path / d / "history.json").read_text()) if "loss" in h]
              for d in ("one", "two"))
    assert len(la) == 3 and la == pytest.approx(lb, rel=1e-4)


def _ddp_grads(rank: int, world: int, port: int, data: str, prep: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    model, fam, batch = _float64_setup(data, prep, rank, world)
    from lib import distributed as D

    D.convert_batchnorm(model, torch.device("cpu"))
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    loss, _ = fam.compute_loss(ddp, batch, 0)
    loss.backward()
    if rank == 0:
        torch.save({k: p.grad for k, p in model.named_parameters() if p.grad is not None}, out)
    torch.distributed.destroy_process_group()


def _float64_setup(data: str, prep: str, rank: int, world: int) -> tuple[torch.nn.Module, object, dict]:
    from lib.families.base import TrainContext
    from lib.prep import load_split

    cfg = load_config(SE3, tiny_overrides(batch_size=8))
    fam = get_family(cfg.family)
    ctx = TrainContext.create(data, prep, device="cpu", workers=0)
    ds = fam.train_dataset(cfg, ctx, load_split(prep)["train"])
    torch.manual_seed(0)
    model = fam.build_model(cfg, num_classes=len(ds)).double()
    keys = global_batch_keys(len(ds), 8, 0, 0)
    b = 8 // world
    return model, fam, fam.collate([ds[k] for k in keys[rank * b:(rank + 1) * b]])


def test_ddp_gradient_is_the_global_batch_gradient_in_float64(mini: tuple[Path, Path], tmp_path: Path) -> None:
    """Two gloo processes (gathered contrastive embeddings, global batch statistics, ID losses on each shard, DDP
    averaging) give the gradient of one process on the whole batch, to float64 precision."""
    data, prep = (str(p) for p in mini)
    cfg = load_config(SE3, tiny_overrides(batch_size=8))
    from lib.families.base import TrainContext
    from lib.prep import load_split

    get_family(cfg.family).prepare(cfg, TrainContext.create(data, prep, device="cpu", workers=0),
                                   sum(load_split(prep).values(), []))
    model, fam, batch = _float64_setup(data, prep, 0, 1)
    loss, _ = fam.compute_loss(model, batch, 0)
    loss.backward()
    one = {k: p.grad for k, p in model.named_parameters() if p.grad is not None}
    out = str(tmp_path / "g2.pt")
    torch.multiprocessing.spawn(_ddp_grads, args=(2, 29500 + os.getpid() % 400, data, prep, out), nprocs=2)
    two = torch.load(out, weights_only=True)
    assert one.keys() == two.keys() and len(one) > 100
    for k in one:
        assert torch.allclose(one[k], two[k], rtol=1e-9, atol=1e-12), (k, (one[k] - two[k]).abs().max().item())
