"""Import of the authors' Part One checkpoints: their architecture rebuilt with the packages they used
(``pretrainedmodels`` SE-ResNeXt50-32x4d, ``efficientnet_pytorch`` EfficientNet-B2/B3) under their module names,
random weights, saved the way they saved it (``{"state_dict"}`` with ``module.`` keys), imported into our model:
same embeddings for the same inputs (1e-4)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lib.families import load_config
from lib.families.dual_stream.authors import load_authors_checkpoint, read_authors_checkpoint

pretrainedmodels = pytest.importorskip("pretrainedmodels")
efficientnet_pytorch = pytest.importorskip("efficientnet_pytorch")

E = 64  # a small embedding keeps the test fast; the layer structure is the published one


class AuthorsDualStream(nn.Module):
    """The authors' dual-stream model (AIC2021-T5-CLV), module names as in their checkpoints."""

    def __init__(self, encoder: str, image_size: int, num_class: int, ids: tuple[bool, bool, bool],
                 text_width: int) -> None:
        super().__init__()
        self.se = encoder == "se_resnext50_32x4d"
        if self.se:
            self.vis_backbone = pretrainedmodels.se_resnext50_32x4d(num_classes=1000, pretrained=None)
            self.vis_backbone_bk = pretrainedmodels.se_resnext50_32x4d(num_classes=1000, pretrained=None)
            c = 2048
            self.domian_vis_fc = nn.Conv2d(c, E, kernel_size=1)
            self.domian_vis_fc_bk = nn.Conv2d(c, E, kernel_size=1)
        else:
            make = efficientnet_pytorch.EfficientNet.from_name
            self.vis_backbone = make(encoder, image_size=image_size)
            self.vis_backbone_bk = make(encoder, image_size=image_size)
            c = self.vis_backbone._fc.in_features
            self.domian_vis_fc = nn.Linear(c, E)
            self.domian_vis_fc_bk = nn.Linear(c, E)
        self.bert_model = nn.Linear(4, 4)  # stands for the frozen RoBERTa (its keys must be reported, not loaded)
        self.logit_scale = nn.Parameter(torch.ones(()))
        self.domian_lang_fc = nn.Sequential(nn.LayerNorm(text_width), nn.Linear(text_width, E), nn.ReLU(),
                                            nn.Linear(E, E))
        cls = lambda: nn.Sequential(nn.Linear(E, E), nn.BatchNorm1d(E), nn.ReLU(), nn.Linear(E, num_class))  # noqa
        self.ids = ids
        if ids[0]:
            self.id_cls = cls()
        if ids[1]:
            self.id_cls2 = cls()
        if ids[2]:
            self.id_cls3 = cls()
        self.vis_car_fc = nn.Sequential(nn.BatchNorm1d(E), nn.ReLU(), nn.Linear(E, E // 2))
        self.lang_car_fc = nn.Sequential(nn.LayerNorm(E), nn.ReLU(), nn.Linear(E, E // 2))
        self.vis_motion_fc = nn.Sequential(nn.BatchNorm1d(E), nn.ReLU(), nn.Linear(E, E // 2))
        self.lang_motion_fc = nn.Sequential(nn.LayerNorm(E), nn.ReLU(), nn.Linear(E, E // 2))
        self.domian_vis_fc_merge = nn.Sequential(nn.Linear(E, E), nn.BatchNorm1d(E), nn.ReLU(), nn.Linear(E, E))

    def _stream(self, bb: nn.Module, fc: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.se:  # SENet features, global average pool, 1x1 conv, flatten
            return fc(F.adaptive_avg_pool2d(bb.features(x), 1)).flatten(1)
        f = bb._avg_pooling(bb.extract_features(x)).flatten(1)  # EfficientNet: pool, dropout, Linear
        return fc(bb._dropout(f))

    def encode_images(self, crops: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        v = self._stream(self.vis_backbone, self.domian_vis_fc, crops)
        m = self._stream(self.vis_backbone_bk, self.domian_vis_fc_bk, motion)
        merged = self.domian_vis_fc_merge(torch.cat([self.vis_car_fc(v), self.vis_motion_fc(m)], dim=-1))
        return F.normalize(merged, dim=-1)

    def encode_text_features(self, pooled: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.domian_lang_fc(pooled), dim=-1)


def _randomise(model: nn.Module) -> None:
    """Random weights everywhere, including batch-norm statistics (so eval mode is a real test)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point() or t.dim() == 0:  # logit_scale keeps its published init
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif name.endswith("weight") and t.dim() == 1:
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * (1.0 / max(1, t[0].numel()) ** 0.5))


CASES = [
    # (our config, authors' encoder name, padding size, input size)
    ("motion_SE_3CLS_nonlpaug_288", "se_resnext50_32x4d", None, 64),
    ("motion_effb2_1CLS_nlpaug_288", "efficientnet-b2", 64, 72),
    ("motion_effb3_NOCLS_nlpaug_320", "efficientnet-b3", 64, 80),
]


@pytest.mark.parametrize(("config", "encoder", "pad", "size"), CASES)
def test_authors_checkpoint_gives_the_same_embeddings(config: str, encoder: str, pad: int | None, size: int,
                                                      tmp_path: Path) -> None:
    """EfficientNet cases run at an input size other than the one the authors' static padding was computed for
    (like their 300-px padding at 320-px inputs): our ``static_padding_size`` must reproduce it."""
    over = {"model": {"backbone_weights": None, "embed_dim": E, "image_size": size,
                      "text_encoder": "all-MiniLM-L6-v2", "static_padding_size": pad}}
    cfg = load_config(f"params/{config}.yaml", over)
    ids = (cfg.model.car_idloss, cfg.model.mo_idloss, cfg.model.share_idloss)
    torch.manual_seed(0)
    authors = AuthorsDualStream(encoder, pad or size, num_class=7, ids=ids, text_width=384)
    _randomise(authors)
    authors.eval()
    path = tmp_path / "released.pth"
    sd = {f"module.{k}": v for k, v in authors.state_dict().items()}
    torch.save({"epoch": 40, "state_dict": sd}, path)

    ours, report = load_authors_checkpoint(path, cfg, with_text_encoder=False)
    assert report.missing == [] and report.unexpected == [], report.summary()
    assert report.ignored["frozen text encoder (loaded from model.text_encoder)"] == 2
    assert report.num_classes == (7 if any(ids) else 0)
    assert report.loaded > 500

    g = torch.Generator().manual_seed(1)
    crops = torch.randint(0, 256, (3, size, size, 3), dtype=torch.uint8, generator=g)
    motion = torch.randint(0, 256, (3, size, size, 3), dtype=torch.uint8, generator=g)
    pooled = torch.randn(5, 384, generator=g)
    with torch.no_grad():
        norm = ours.normalize_images
        ref_v = authors.encode_images(norm(crops), norm(motion))
        ref_t = authors.encode_text_features(pooled)
        got_v = ours.encode_images(crops, motion)
        got_t = ours.encode_text_features(pooled)
    assert torch.allclose(got_v, ref_v, atol=1e-4), (got_v - ref_v).abs().max()
    assert torch.allclose(got_t, ref_t, atol=1e-4)
    if pad is not None and pad != size:  # the padding matters: without it the embeddings differ
        plain = load_config(f"params/{config}.yaml", {"model": {**over["model"], "static_padding_size": None}})
        other, _ = load_authors_checkpoint(path, plain, with_text_encoder=False,
                                           state_dict=read_authors_checkpoint(path))
        with torch.no_grad():
            assert (other.encode_images(crops, motion) - ref_v).abs().max() > 1e-3


def test_unreadable_or_foreign_checkpoints_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "object.pth"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "cfg": Path("/etc")}, bad)  # an arbitrary object inside
    with pytest.raises(RuntimeError, match="weights_only"):
        read_authors_checkpoint(bad)
    with pytest.raises(FileNotFoundError, match="not found"):
        read_authors_checkpoint(tmp_path / "absent.pth")
