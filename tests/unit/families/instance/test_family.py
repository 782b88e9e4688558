"""The instance family through the generic trainer: every output, resume to the same weights, and the DDP gradient
(two gloo processes, float64) equal to the one-process gradient of the same global batch."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from lib.config import merge
from lib.families import load_config, load_trained_model
from lib.families.base import TrainContext, get_family
from lib.prep import load_split
from lib.train import train
from lib.train.checkpoint import load_state
from lib.train.sampler import global_batch_keys
from tests.helpers.instance_configs import small_cpu_overrides
from tests.helpers.track_dataset import make_mini_dataset

CPU = "b36_lr1_w20_clip_e100_dd_drop0.9_CROP256_nseg3_pad0.2_cpu"


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_mini_dataset(tmp_path_factory.mktemp("instance_train"), n_tracks=16, n_frames=5, n_val=4)


def _run(mini: tuple[Path, Path], out: Path, max_steps: int) -> dict:
    cfg = load_config(CPU, small_cpu_overrides(max_steps=4, val_every=2, ckpt_every=2))
    return train(cfg, *mini, out, max_steps=max_steps, workers=0, device="cpu", progress=False,
                 log=lambda _m: None)


def test_train_writes_every_output_and_resumes_to_the_same_weights(mini, tmp_path: Path) -> None:
    m = _run(mini, tmp_path / "a", 4)
    a = tmp_path / "a"
    for f in ("best.safetensors", "last.safetensors", "state.pt", "metrics.json", "history.json", "curves.png",
              "run_info.json"):
        assert (a / f).exists(), f
    assert m["steps"] == 4 and m["n_val"] == 4 and 0 < m["random_mrr"] < 1 and m["val_mrr"] is not None
    hist = json.loads((a / "history.json").read_text())
    factors = [h["loss_factor"] for h in hist if "loss_factor" in h]
    assert factors[0] < factors[-1] <= 1.0  # the published warm-up is a factor on the loss
    assert load_state(a / "state.pt")["step"] == 4  # weights_only
    # killed after step 2 and restarted: the same final weights
    _run(mini, tmp_path / "b", 2)
    _run(mini, tmp_path / "b", 4)
    wa, wb = load_file(str(a / "last.safetensors")), load_file(str(tmp_path / "b" / "last.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-6), k
    cfg = load_config(CPU, small_cpu_overrides())
    model = load_trained_model(cfg, a / "best.safetensors", device="cpu")
    assert model.nseg == 3 and model.num_classes == 12


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _setup(data: str, prep: str, rank: int, world: int):
    over = small_cpu_overrides(batch_size=8)
    over["model"]["droprate"] = 0.0  # dropout draws differ between one and two processes
    cfg = load_config(CPU, over)
    fam = get_family("instance")
    ctx = TrainContext.create(data, prep, device="cpu", workers=0)
    ds = fam.train_dataset(cfg, ctx, load_split(prep)["train"])
    torch.manual_seed(0)
    model = fam.build_model(cfg, **ds.model_kwargs).double()
    keys = global_batch_keys(len(ds), 8, 0, 0)
    b = 8 // world
    return model, fam, fam.collate([ds[k] for k in keys[rank * b:(rank + 1) * b]])


def _ddp_worker(rank: int, world: int, port: int, data: str, prep: str, out: str) -> None:
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    from lib import distributed as D

    model, fam, batch = _setup(data, prep, rank, world)
    D.convert_batchnorm(model, torch.device("cpu"))
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    model.train()
    model.text_encoder.eval()  # its dropout draws differ between one and two processes
    loss, _ = fam.compute_loss(ddp, batch, 0)
    loss.backward()
    if rank == 0:
        torch.save({k: p.grad for k, p in model.named_parameters() if p.grad is not None}, out)
    torch.distributed.destroy_process_group()


def test_ddp_gradient_is_the_global_batch_gradient(mini, tmp_path: Path) -> None:
    """dd loss over the gathered global batch + id losses on each shard + batch norm over all ranks + texts padded
    to the longest of the global batch: the DDP gradient on 2 x 4 samples equals the one-process gradient on the 8
    samples (float64; dropout off)."""
    data, prep = (str(p) for p in mini)
    out = tmp_path / "g2.pt"
    mp.spawn(_ddp_worker, args=(2, _free_port(), data, prep, str(out)), nprocs=2, join=True)
    model, fam, batch = _setup(data, prep, 0, 1)
    model.train()
    model.text_encoder.eval()
    loss, _ = fam.compute_loss(model, batch, 0)
    loss.backward()
    g2 = torch.load(out, weights_only=True)
    g1 = {k: p.grad for k, p in model.named_parameters() if p.grad is not None}
    assert g1.keys() == g2.keys() and len(g1) > 50
    for k in g1:
        assert torch.allclose(g1[k], g2[k], atol=1e-9, rtol=1e-6), (k, (g1[k] - g2[k]).abs().max().item())


def test_paper_run_trains_on_the_whole_file_and_embeds_the_net_last_checkpoint(mini, tmp_path: Path) -> None:
    """Part Two as published: every track of train-tracks.json (class_num = its size, nothing held out), the
    checkpoint of the original's net_last rule; the val MRR is labelled a training-fit number."""
    from lib.cityflow import load_tracks

    paper = load_config("b48_lr1_w20_clip_e120_dd")
    assert paper.train.train_on == "all" and paper.train.checkpoint == "lowest_loss"
    assert load_config(CPU).train.train_on == "split"  # the CPU variant keeps val held out (fitted weights)
    over = merge(small_cpu_overrides(max_steps=4, val_every=2, ckpt_every=2), {"train": {"train_on": "all"}})
    cfg = load_config(CPU, over)
    m = train(cfg, *mini, tmp_path / "all", workers=0, device="cpu", progress=False, log=lambda _m: None)
    n_file = len(load_tracks(Path(mini[0]) / "train-tracks.json"))
    assert m["n_train"] == n_file and m["val_is_training_fit"] and m["train_on"] == "all"
    assert m["checkpoint_rule"] == "lowest_loss"
    model = load_trained_model(cfg, tmp_path / "all" / "best.safetensors", device="cpu")
    assert model.num_classes == n_file
