"""Generalised-mean (GeM) pooling with a learnable exponent per channel, as in the Part Two model.

``GeM(x) = mean(clamp(x, eps) ** p) ** (1 / p)`` over the spatial positions, with ``p`` a vector of one learnable
exponent per channel. The original does not clamp ``p`` (it can drift anywhere during training) and we keep that.
With ``p = 1`` it is average pooling of the clamped map, and a large ``p`` approaches max pooling; the published
model concatenates one of each (initial ``p`` 1 and 5). Over segments (several frames of a track) the same pooling
runs over the segment axis of a ``(B, C, nseg, 1)`` tensor with initial ``p = 3``.
"""

from __future__ import annotations

import torch
from torch import nn


class GeM(nn.Module):
    """GeM pooling over every position of a ``(B, C, H, W)`` map -> ``(B, C)``; ``p`` per channel, unclamped."""

    def __init__(self, dim: int, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.full((dim,), float(p)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.p.numel():
            raise ValueError(f"GeM expects (B, {self.p.numel()}, H, W), got {tuple(x.shape)}")
        # at least float32 even under autocast: x ** 5 of bfloat16 activations loses too much precision
        dtype = torch.promote_types(x.dtype, torch.float32)
        p = self.p.to(dtype).view(1, -1, 1, 1)
        pooled = x.to(dtype).clamp(min=self.eps).pow(p).mean(dim=(2, 3))
        return pooled.pow(1.0 / p.view(1, -1))

    def extra_repr(self) -> str:
        return f"dim={self.p.numel()}, eps={self.eps}"


def gem_over_segments(pool: GeM, feats: torch.Tensor, nseg: int) -> torch.Tensor:
    """Fuse ``(B * nseg, C)`` per-frame features (segments of a sample adjacent) into ``(B, C)`` with ``pool``.

    The published layout: ``(B, nseg, C) -> (B, C, nseg, 1)``, then GeM over the segment axis.
    """
    if feats.shape[0] % nseg:
        raise ValueError(f"{feats.shape[0]} frame features are not a multiple of nseg={nseg}")
    b = feats.shape[0] // nseg
    x = feats.view(b, nseg, -1).permute(0, 2, 1).unsqueeze(-1)
    return pool(x)
