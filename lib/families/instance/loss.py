"""Part Two losses: instance cross-entropy through the shared classifier plus one contrastive term.

Published (``docs/reference.md``, P2.3), with ``v``, ``t`` the L2-normalised 512-d embeddings:

- ``ddloss`` (every final model): ``logits = e^s * v^T t`` is a 512 x 512 feature-dimension cross-correlation
  over the batch; symmetric cross-entropy with target ``k`` for dimension ``k`` and no id mask.
- sample-level (``clip``): ``logits = e^s * v t^T`` (B x B); for ``i != j`` with the same instance id the logit
  is multiplied by 0 and *stays* in the softmax (``same_id: zero_logit``, published); ``same_id: exclude`` removes
  those pairs from the softmax instead (not published). Symmetric cross-entropy with diagonal targets.
- id: ``CE(visual logits, id) + CE(text logits, id)`` (ignore index -1).
- total: ``contrastive / 2 + id_visual + id_text``, times the warm-up factor (:func:`warmup_factor`).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

IGNORE_INDEX = -1


def dd_loss(v: torch.Tensor, t: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Feature-dimension contrastive term: symmetric CE over the D x D matrix ``e^s v^T t`` (sum of both ways)."""
    logits = logit_scale.exp() * (v.t() @ t)
    target = torch.arange(logits.shape[0], device=logits.device)
    return F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)


def sample_contrastive_loss(v: torch.Tensor, t: torch.Tensor, logit_scale: torch.Tensor, ids: torch.Tensor,
                            same_id: Literal["zero_logit", "exclude"] = "zero_logit") -> torch.Tensor:
    """Sample-level symmetric CE over ``e^s v t^T`` with the same-id mask (sum of both ways)."""
    logits = logit_scale.exp() * (v @ t.t())
    n = logits.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=logits.device)
    same = (ids.view(-1, 1) == ids.view(1, -1)) & ~eye
    if same_id == "zero_logit":
        logits = logits * (~same).to(logits.dtype)
    elif same_id == "exclude":
        logits = logits.masked_fill(same, float("-inf"))
    else:
        raise ValueError(f"same_id: unknown mode {same_id!r}; expected 'zero_logit' or 'exclude'")
    target = torch.arange(n, device=logits.device)
    target = torch.where(ids == IGNORE_INDEX, torch.full_like(target, IGNORE_INDEX), target)
    return (F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)
            + F.cross_entropy(logits.t(), target, ignore_index=IGNORE_INDEX))


def id_loss(visual_logits: torch.Tensor, text_logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    return (F.cross_entropy(visual_logits, ids, ignore_index=IGNORE_INDEX)
            + F.cross_entropy(text_logits, ids, ignore_index=IGNORE_INDEX))


def warmup_factor(step: int, steps_per_epoch: int, warm_epochs: float, dataset_len: int, batch_size: int) -> float:
    """The published loss warm-up: 0.1 -> 1 linearly over ``warm_epochs * round(N / B)`` iterations.

    The original adds ``0.9 / warm_iterations`` before each iteration while ``epoch < warm_epoch`` (so the first
    step already has ``0.1 + 0.9 / W``) and stops applying the factor from epoch ``warm_epoch`` on. ``step`` is
    0-based.
    """
    if warm_epochs <= 0:
        return 1.0
    warm_iters = warm_epochs * round(dataset_len / batch_size)
    epoch = step // max(1, steps_per_epoch)
    if epoch >= warm_epochs or warm_iters <= 0:
        return 1.0
    return min(1.0, 0.1 + 0.9 * (step + 1) / warm_iters)


def instance_loss(v: torch.Tensor, t: torch.Tensor, visual_logits: torch.Tensor, text_logits: torch.Tensor,
                  ids: torch.Tensor, logit_scale: torch.Tensor, kind: Literal["dd", "clip"] = "dd",
                  same_id: Literal["zero_logit", "exclude"] = "zero_logit",
                  ids_contrastive: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """All terms for one batch; ``v``, ``t`` are the raw 512-d embeddings (normalised here).

    Under DDP ``v``/``t`` are the gathered global batch and ``ids_contrastive`` its ids, while the logits and
    ``ids`` are this rank's shard; in one process both are the same batch.
    """
    v = F.normalize(v, dim=1)
    t = F.normalize(t, dim=1)
    if kind == "dd":
        con = dd_loss(v, t, logit_scale)
    elif kind == "clip":
        con = sample_contrastive_loss(v, t, logit_scale, ids if ids_contrastive is None else ids_contrastive,
                                      same_id)
    else:
        raise ValueError(f"loss: unknown kind {kind!r}; expected 'dd' or 'clip'")
    idl = id_loss(visual_logits, text_logits, ids)
    return {"loss": con / 2 + idl, "contrastive": con.detach(), "id": idl.detach()}
