"""DistributedDataParallel plumbing: process group from the ``torchrun`` environment, the device of this rank,
gathering embeddings with gradient, and batch norm over the global batch.

Under ``torchrun --nproc_per_node K`` (``WORLD_SIZE`` > 1) the backend is NCCL on GPUs (device ``cuda:LOCAL_RANK``)
and gloo on CPU. ``torch.nn.SyncBatchNorm`` only runs on accelerators, so on CPU :func:`convert_batchnorm` swaps
each batch-norm layer's class for a subclass that computes the batch statistics over all ranks (two all-reduces
with autograd); parameter and buffer names stay the same, so checkpoints are interchangeable.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str | torch.device | None = None) -> DistInfo:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1); pick this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        dev = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    else:
        dev = torch.device(device)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device(f"cuda:{local_rank}")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        # rank 0 may build caches for a long time while the others wait at a barrier
        timeout = datetime.timedelta(seconds=int(os.environ.get("CFNL_DIST_TIMEOUT_S", str(6 * 3600))))
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo", timeout=timeout)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every rank along dim 0, keeping the gradient path to each rank's own rows.

    Identity in one process. With K ranks every rank then computes the same global loss; the all-gather backward
    sums the K identical gradients of a rank's rows and DDP averages over the ranks, which gives exactly the
    gradient of the global-batch loss.
    """
    if not is_distributed():
        return x
    from torch.distributed.nn.functional import all_gather

    with warnings.catch_warnings():  # deprecated in favour of a private API; still the public autograd collective
        warnings.simplefilter("ignore", FutureWarning)
        return torch.cat(all_gather(x), dim=0)


def _all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    from torch.distributed.nn.functional import all_reduce

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return all_reduce(x, op=dist.ReduceOp.SUM)


class _GlobalStatsBatchNorm:
    """Mixin: training-mode batch norm with mean/variance over every rank's batch (CPU / gloo)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if not (self.training and is_distributed()):
            return super().forward(x)  # type: ignore[misc]
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = torch.tensor([float(x.numel() // x.shape[1])], dtype=x.dtype, device=x.device)
        n = _all_reduce_sum(count)
        mean = _all_reduce_sum(x.sum(dim=dims)) / n
        var = _all_reduce_sum(((x - mean.view(shape)) ** 2).sum(dim=dims)) / n
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var.detach() * (n / torch.clamp(n - 1, min=1))
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased, alpha=m)
        # timm's BatchNormAct2d: dropout + activation after the normalisation
        if hasattr(self, "act") and hasattr(self, "drop"):
            y = self.act(self.drop(y))
        return y


_GLOBAL_CLASSES: dict[type, type] = {}


def _global_class(cls: type) -> type:
    if cls not in _GLOBAL_CLASSES:
        _GLOBAL_CLASSES[cls] = type(f"Global{cls.__name__}", (_GlobalStatsBatchNorm, cls), {})
    return _GLOBAL_CLASSES[cls]


def convert_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Batch norm over the global batch: ``SyncBatchNorm`` on accelerators, the gloo-capable mixin on CPU."""
    if device.type == "cuda":
        try:
            from timm.layers import convert_sync_batchnorm  # handles timm's BatchNormAct2d
            return convert_sync_batchnorm(model)
        except ImportError:  # pragma: no cover - timm is a hard dependency
            return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for mod in model.modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm) and not isinstance(mod, _GlobalStatsBatchNorm):
            mod.__class__ = _global_class(type(mod))
    return model


def max_weight_difference(model: nn.Module) -> float:
    """Largest absolute difference between this rank's parameters/buffers and rank 0's (0.0 in one process)."""
    if not is_distributed():
        return 0.0
    tensors = [t for t in model.state_dict().values() if torch.is_floating_point(t)]
    device = tensors[0].device if tensors else torch.device("cpu")
    worst = torch.zeros((), dtype=torch.float64, device=device)
    for t in tensors:
        ref = t.detach().clone()
        dist.broadcast(ref, src=0)
        worst = torch.maximum(worst, (t.detach() - ref).abs().max().double())
    dist.all_reduce(worst, op=dist.ReduceOp.MAX)
    return float(worst.item())


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


__all__ = ["DistInfo", "init_distributed", "is_distributed", "barrier", "gather_with_grad", "convert_batchnorm",
           "max_weight_difference", "unwrap"]


def autocast(device: torch.device | str, enabled: bool) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast on CUDA when ``enabled``; a no-op elsewhere (CPU always runs in float32). The one
    precision switch of training and embedding."""
    dev = torch.device(device)
    if enabled and dev.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
