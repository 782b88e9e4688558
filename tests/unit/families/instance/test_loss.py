"""Part Two losses and GeM pooling, against direct formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lib.families.instance import loss as L
from lib.families.instance.gem import GeM, gem_over_segments


def test_gem_p1_is_mean_and_large_p_approaches_max() -> None:
    x = torch.rand(2, 4, 3, 5) + 0.1
    assert torch.allclose(GeM(4, p=1.0)(x), x.mean(dim=(2, 3)), atol=1e-6)
    assert torch.allclose(GeM(4, p=60.0)(x), x.amax(dim=(2, 3)), rtol=0.05)
    g = GeM(4, p=3.0)
    assert g.p.requires_grad and g.p.shape == (4,)
    ref = x.clamp(min=1e-6).pow(3).mean(dim=(2, 3)).pow(1 / 3)
    assert torch.allclose(g(x), ref, atol=1e-6)


def test_gem_over_segments_groups_adjacent_rows() -> None:
    feats = torch.arange(1, 13, dtype=torch.float32).view(6, 2)  # B=2 samples x nseg=3, C=2
    out = gem_over_segments(GeM(2, p=1.0), feats, nseg=3)
    assert torch.allclose(out, torch.stack([feats[:3].mean(0), feats[3:].mean(0)]))
    with pytest.raises(ValueError, match="nseg"):
        gem_over_segments(GeM(2, p=1.0), feats[:5], nseg=3)


def test_dd_loss_is_the_feature_dimension_cross_entropy() -> None:
    torch.manual_seed(0)
    v, t = F.normalize(torch.randn(6, 8), dim=1), F.normalize(torch.randn(6, 8), dim=1)
    s = torch.tensor(1.0)
    logits = math.e * (v.t() @ t)  # 8 x 8
    expected = 0.0
    for k in range(8):
        expected += -torch.log_softmax(logits[k], 0)[k] / 8 - torch.log_softmax(logits[:, k], 0)[k] / 8
    assert torch.isclose(L.dd_loss(v, t, s), expected, atol=1e-5)


def test_sample_contrastive_keeps_same_id_pairs_with_zero_logit() -> None:
    torch.manual_seed(1)
    v, t = F.normalize(torch.randn(4, 5), dim=1), F.normalize(torch.randn(4, 5), dim=1)
    ids = torch.tensor([3, 3, 7, 9])
    s = torch.tensor(0.5)
    logits = math.exp(0.5) * v @ t.t()
    zeroed = logits.clone()
    zeroed[0, 1] = zeroed[1, 0] = 0.0
    y = torch.arange(4)
    ref = F.cross_entropy(zeroed, y) + F.cross_entropy(zeroed.t(), y)
    assert torch.isclose(L.sample_contrastive_loss(v, t, s, ids), ref, atol=1e-6)
    excl = logits.clone()
    excl[0, 1] = excl[1, 0] = float("-inf")
    ref2 = F.cross_entropy(excl, y) + F.cross_entropy(excl.t(), y)
    assert torch.isclose(L.sample_contrastive_loss(v, t, s, ids, same_id="exclude"), ref2, atol=1e-6)


def test_instance_loss_total_and_gradients() -> None:
    torch.manual_seed(2)
    v = torch.randn(4, 512, requires_grad=True)
    t = torch.randn(4, 512, requires_grad=True)
    vl, ll = torch.randn(4, 10, requires_grad=True), torch.randn(4, 10, requires_grad=True)
    ids = torch.tensor([0, 1, 2, 2])
    scale = torch.tensor(1.0, requires_grad=True)
    out = L.instance_loss(v, t, vl, ll, ids, scale, kind="dd")
    con = L.dd_loss(F.normalize(v, dim=1), F.normalize(t, dim=1), scale)
    idl = F.cross_entropy(vl, ids) + F.cross_entropy(ll, ids)
    assert torch.isclose(out["loss"], con / 2 + idl)
    out["loss"].backward()
    assert scale.grad is not None and v.grad is not None and vl.grad is not None
    with pytest.raises(ValueError, match="loss"):
        L.instance_loss(v, t, vl, ll, ids, scale, kind="nope")  # type: ignore[arg-type]


def test_warmup_factor_follows_the_published_increment() -> None:
    # N = 100 samples, B = 10 -> 10 steps/epoch; warm 2 epochs -> 20 warm iterations
    f = [L.warmup_factor(s, 10, 2, 100, 10) for s in range(25)]
    assert math.isclose(f[0], 0.1 + 0.9 / 20)
    assert math.isclose(f[9], 0.1 + 0.9 * 10 / 20)
    assert math.isclose(f[19], 1.0) and f[24] == 1.0
    assert all(a < b for a, b in zip(f[:19], f[1:20]))
    assert L.warmup_factor(0, 10, 0, 100, 10) == 1.0
    # round(N / B) > steps/epoch (drop_last): the factor stops short of 1 and jumps at the epoch boundary
    g = [L.warmup_factor(s, 9, 1, 95, 10) for s in range(10)]
    assert g[8] < 1.0 and g[9] == 1.0
