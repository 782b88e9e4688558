"""The dual-stream model family: the published architecture, losses, the five paper configurations (one training
step each on CPU) and the crop-only ablation."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lib.config import ConfigError
from lib.families import create_model, load_config
from lib.families.backbones import MissingWeightsError, create_backbone
from lib.families.base import get_family
from lib.families.dual_stream.loss import symmetric_infonce
from lib.families.dual_stream.model import DualStreamModel
from lib.families.text_encoders import text_encoder_available

PAPER = ["motion_effb3_NOCLS_nlpaug_320", "motion_effb2_1CLS_nlpaug_288", "motion_SE_3CLS_nonlpaug_288",
         "motion_SE_NOCLS_nlpaug_288", "motion_SE_NOCLS_nonlpaug_288"]
log = logging.getLogger(__name__)


def _small(**model: object) -> dict:
    m = {"backbone": "test_efficientnet", "backbone_weights": None, "image_size": 32, "embed_dim": 32,
         "text_encoder": "all-MiniLM-L6-v2", "static_padding_size": None}
    m.update(model)
    return {"model": m}


def test_paper_configs_keep_the_published_settings() -> None:
    expect = {  # backbone, size, crop area, text, (car, motion, share), ensemble weight
        "motion_effb3_NOCLS_nlpaug_320": ("tf_efficientnet_b3", 320, 1.5, "nlpaug", (False, False, False), 4),
        "motion_effb2_1CLS_nlpaug_288": ("tf_efficientnet_b2", 288, 1.6666667, "nlpaug", (True, False, False), 1),
        "motion_SE_3CLS_nonlpaug_288": ("legacy_seresnext50_32x4d", 288, 1.0, "plain", (True, True, True), 1),
        "motion_SE_NOCLS_nlpaug_288": ("legacy_seresnext50_32x4d", 288, 1.5, "nlpaug", (False, False, False), 1),
        "motion_SE_NOCLS_nonlpaug_288": ("legacy_seresnext50_32x4d", 288, 1.0, "plain", (False, False, False), 1),
    }
    for name, (bb, size, crop, text, ids, w) in expect.items():
        c = load_config(f"params/{name}.yaml")
        assert c.name == name and c.family == "dual_stream" and c.ensemble_weight == w
        m, t = c.model, c.train
        assert (m.backbone, m.image_size, c.data.crop_area, c.data.text) == (bb, size, crop, text)
        assert (m.car_idloss, m.mo_idloss, m.share_idloss) == ids and m.id_loss_weight == 0.5
        assert m.text_encoder == "roberta-large" and m.embed_dim == 1024 and m.text_pooling == "mean_all"
        assert m.backbone_weights and "CFNL_MODELS_DIR" in m.backbone_weights
        assert (t.batch_size, t.lr, t.epochs, t.warmup_epochs, t.warmup_lr, t.lr_decay, t.lr_decay_every_epochs) \
            == (64, 0.01, 1200, 40, 1e-7, 0.1, 240)
        assert c.data.sentences_sampled == 3 and c.embed.frames_per_track is None
        cpu = load_config(f"params/{name}_cpu.yaml")  # the CPU variant keeps what distinguishes the config
        assert (cpu.data.crop_area, cpu.data.text) == (crop, text)
        assert (cpu.model.car_idloss, cpu.model.mo_idloss, cpu.model.share_idloss) == ids
        assert cpu.model.backbone_weights is None and cpu.model.text_encoder == "all-MiniLM-L6-v2"
        assert cpu.name == f"{name}_cpu" and cpu.ensemble_weight == w


def test_unknown_keys_are_refused_with_the_allowed_ones() -> None:
    with pytest.raises(ConfigError, match="crop_aera.*did you mean 'crop_area'"):
        load_config("params/motion_effb3_NOCLS_nlpaug_320.yaml", {"data": {"crop_aera": 2.0}})


def test_architecture_is_the_published_one() -> None:
    cfg = load_config("params/motion_SE_3CLS_nonlpaug_288.yaml", _small(proj="auto"))
    m: DualStreamModel = create_model(cfg, num_classes=5)
    e = 32
    seq = lambda s: [type(x).__name__ for x in s]  # noqa: E731
    assert seq(m.crop_head) == seq(m.motion_head) == ["BatchNorm1d", "ReLU", "Linear"]
    assert m.crop_head[2].out_features == e // 2
    assert seq(m.merge) == ["Linear", "BatchNorm1d", "ReLU", "Linear"] and m.merge[0].in_features == e
    assert seq(m.text_proj) == ["LayerNorm", "Linear", "ReLU", "Linear"]
    assert m.text_proj[0].normalized_shape == (384,) and m.text_proj[1].out_features == e  # MiniLM width -> E
    assert seq(m.text_car_head) == seq(m.text_motion_head) == ["LayerNorm", "ReLU", "Linear"]
    for cls in (m.id_cls_car, m.id_cls_motion, m.id_cls_share):
        assert seq(cls) == ["Linear", "BatchNorm1d", "ReLU", "Linear"] and cls[3].out_features == 5
    assert float(m.logit_scale.detach()) == 1.0
    assert isinstance(m.crop_proj.fc, nn.Linear)  # test_efficientnet is not an SE-ResNeXt: linear projection
    se = load_config("params/motion_SE_NOCLS_nonlpaug_288.yaml", _small(backbone="legacy_seresnet18"))
    assert isinstance(create_model(se).crop_proj.fc, nn.Conv2d)
    # the frozen encoder is not part of the trainable state or the checkpoint
    assert not any(k.startswith("_text_encoder") for k in m.state_dict())
    nocls = create_model(load_config("params/motion_SE_NOCLS_nonlpaug_288.yaml", _small()), num_classes=5)
    assert not any(k.startswith("id_cls") for k in nocls.state_dict())


def test_losses_follow_the_published_formulas() -> None:
    torch.manual_seed(0)
    v, t = F.normalize(torch.randn(6, 8), dim=-1), F.normalize(torch.randn(6, 8), dim=-1)
    s = torch.tensor(1.0)
    logits = math.e * v @ t.T  # exp(logit_scale) with logit_scale = 1
    want = (F.cross_entropy(logits, torch.arange(6)) + F.cross_entropy(logits.T, torch.arange(6))) / 2
    assert torch.allclose(symmetric_infonce(v, t, s), want)
    # the family's loss: 3 InfoNCE pairs + 0.5 x (car, motion, share-text, share-visual) ID terms
    cfg = load_config("params/motion_SE_3CLS_nonlpaug_288.yaml", _small())
    fam = get_family("dual_stream")
    model = fam.build_model(cfg, num_classes=4).train()
    batch = {"crop": torch.randint(0, 255, (4, 32, 32, 3), dtype=torch.uint8),
             "motion": torch.randint(0, 255, (4, 32, 32, 3), dtype=torch.uint8),
             "text": torch.randn(4, 384), "label": torch.tensor([0, 1, 2, 3])}
    torch.manual_seed(1)
    loss, logs = fam.compute_loss(model, batch, 0)
    expect = logs["loss_car"] + logs["loss_motion"] + logs["loss_merged"] + 0.5 * (
        logs["loss_id_car"] + logs["loss_id_motion"] + logs["loss_id_share_text"] + logs["loss_id_share_visual"])
    assert float(loss.detach()) == pytest.approx(expect, rel=1e-5)
    torch.manual_seed(1)
    out = model(batch["crop"], batch["motion"], batch["text"])
    assert len(out["pairs"]) == 3 and len(out["id_logits"]) == 4
    for a, b in out["pairs"]:
        assert torch.allclose(a.norm(dim=-1), torch.ones(4), atol=1e-5)
        assert torch.allclose(b.norm(dim=-1), torch.ones(4), atol=1e-5)


def test_crop_only_ablation_has_a_single_stream() -> None:
    cfg = load_config("params/motion_effb3_NOCLS_nlpaug_320.yaml", {**_small(motion_stream=False)})
    m = create_model(cfg)
    names = {n.split(".")[0] for n in m.state_dict()}
    assert not {"motion_backbone", "motion_proj", "motion_head", "text_motion_head"} & names
    assert m.merge[0].in_features == 16
    out = m(torch.zeros(2, 32, 32, 3, dtype=torch.uint8), None, torch.randn(2, 384))
    assert len(out["pairs"]) == 2
    with pytest.raises(ValueError, match="motion stream"):
        create_model(load_config("params/motion_SE_3CLS_nonlpaug_288.yaml", _small(motion_stream=False)),
                     num_classes=3)


def test_missing_pretrained_weights_say_how_to_provide_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.setenv("CFNL_MODELS_DIR", str(tmp_path))
    with pytest.raises(MissingWeightsError, match=r"tf_efficientnet_b3\.aa_in1k/model\.safetensors.*backbone_weights"):
        create_model(load_config("params/motion_effb3_NOCLS_nlpaug_320.yaml",
                                 {"model": {"text_encoder": "all-MiniLM-L6-v2"}}))
    # a local file is loaded (timm pretrained_cfg_overlay), classifier dropped
    from safetensors.torch import save_file

    src = create_backbone("test_efficientnet")
    f = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(f))
    got = create_backbone("test_efficientnet", f)
    assert all(torch.equal(v, got.state_dict()[k]) for k, v in src.state_dict().items())


def _one_step(name: str, size: int | None, models_dir: Path) -> None:
    """Full-size backbone (no pretrained weights), E = 1024, two samples at ``size`` px (None: the config's own),
    one AdamW step. RoBERTa-large is used when $CFNL_MODELS_DIR/roberta-large exists, else the packaged MiniLM
    (logged)."""
    over: dict = {"model": {"backbone_weights": None}}
    if not text_encoder_available("roberta-large"):
        log.warning("roberta-large not found under $CFNL_MODELS_DIR: %s runs with the packaged all-MiniLM-L6-v2", name)
        over["model"]["text_encoder"] = "all-MiniLM-L6-v2"
    if size is not None:
        over["model"]["image_size"] = size
    cfg = load_config(f"params/{name}.yaml", over)
    fam = get_family("dual_stream")
    torch.manual_seed(0)
    model = fam.build_model(cfg, num_classes=2).train()
    assert model.cfg.embed_dim == 1024 and model.merge[0].in_features == 1024
    opt, sched = fam.optimizer_and_scheduler(model, cfg, steps_per_epoch=37)
    s = cfg.model.image_size
    sentences = ["A white van turns right.", "A red sedan goes straight."]
    batch = {"crop": torch.randint(0, 255, (2, s, s, 3), dtype=torch.uint8),
             "motion": torch.randint(0, 255, (2, s, s, 3), dtype=torch.uint8),
             "text": model.text_encoder.encode(sentences), "label": torch.tensor([0, 1])}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss, logs = fam.compute_loss(model, batch, 0)
    assert torch.isfinite(loss)
    opt.zero_grad()
    loss.backward()
    lr0 = opt.param_groups[0]["lr"]
    opt.step()
    sched.step()
    assert lr0 == pytest.approx(1e-7)  # warm-up starts at 1e-7
    assert opt.param_groups[0]["lr"] > lr0
    changed = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert any(k.startswith("crop_backbone") for k in changed) and any(k.startswith("text_proj") for k in changed)
    n_id = sum(k.startswith("loss_id") for k in logs)
    assert n_id == {"NOCLS": 0, "1CLS": 1, "3CLS": 4}[name.split("_")[2]]


@pytest.mark.parametrize("name", PAPER)
def test_paper_config_builds_and_trains_one_step_on_two_tiny_samples(name: str, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CFNL_MODELS_DIR", str(tmp_path))  # no weights there: random init
    _one_step(name, 64, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", PAPER)
def test_paper_config_trains_one_step_at_its_own_input_size(name: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CFNL_MODELS_DIR", str(tmp_path))
    _one_step(name, None, tmp_path)


@pytest.mark.parametrize("name", [f"{p}_cpu" for p in PAPER] + ["croponly_effb3_NOCLS_nlpaug_320_cpu"])
def test_cpu_variants_build_and_step(name: str) -> None:
    cfg = load_config(f"params/{name}.yaml")
    fam = get_family("dual_stream")
    torch.manual_seed(0)
    model = fam.build_model(cfg, num_classes=4).train()
    opt, _ = fam.optimizer_and_scheduler(model, cfg, steps_per_epoch=10)
    s = cfg.model.image_size
    batch = {"crop": torch.randint(0, 255, (4, s, s, 3), dtype=torch.uint8),
             "motion": torch.randint(0, 255, (4, s, s, 3), dtype=torch.uint8),
             "text": torch.randn(4, 384), "label": torch.arange(4)}
    loss, _ = fam.compute_loss(model, batch, 0)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and cfg.model.backbone_weights is None


def test_bn_momentum_applies_to_every_family() -> None:
    for name in ("resnet10t", "test_efficientnet"):
        bb = create_backbone(name, None, bn_momentum=0.05)
        bns = [m for m in bb.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        assert bns and all(b.momentum == 0.05 for b in bns), name
