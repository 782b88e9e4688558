"""Part One losses: symmetric InfoNCE over a batch of paired embeddings, and the ID (instance) classification loss.

``symmetric_infonce(v, t, scale) = (CE(s V T^T, arange) + CE(s T V^T, arange)) / 2`` with ``s = exp(logit_scale)``
(the published model keeps ``logit_scale`` initialised at 1 and uses its exponential). Pass embeddings gathered over
all DDP ranks (``lib.distributed.gather_with_grad``) to get the global-batch loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def symmetric_infonce(v: torch.Tensor, t: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """InfoNCE in both directions for row-aligned pairs ``v[i] <-> t[i]`` (L2-normalised inputs)."""
    if v.shape != t.shape:
        raise ValueError(f"paired embeddings differ in shape: {tuple(v.shape)} vs {tuple(t.shape)}")
    if v.dtype in (torch.float16, torch.bfloat16):
        v, t = v.float(), t.float()
    scale = logit_scale.exp()
    logits = scale * v @ t.t()
    labels = torch.arange(v.shape[0], device=v.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


def id_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of an ID classifier (labels = the track's index among the train tracks)."""
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    return F.cross_entropy(logits, labels)
