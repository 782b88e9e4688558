"""Part One as the original code runs it (docs/reference.md P1.2-P1.4, issue: the published configurations,
exactly): the frozen RoBERTa with its dropout active while training and batch padding, the ID classifiers before L2
normalisation with NUM_CLASS = the whole train-tracks file, the AutoAugment EfficientNet with drop-connect 0.2 and
BN momentum 0.01 / eps 1e-3, float32."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lib.families import create_model, get_family, load_config
from lib.families.backbones import MissingWeightsError
from lib.families.base import SampleKey, TrainContext
from lib.families.text_encoders import FrozenTextEncoder, TextFeatureCache, text_encoder_available
from lib.prep import load_split
from tests.helpers.track_dataset import make_mini_dataset, tiny_overrides

PAPER = ["motion_effb3_NOCLS_nlpaug_320", "motion_effb2_1CLS_nlpaug_288", "motion_SE_3CLS_nonlpaug_288",
         "motion_SE_NOCLS_nlpaug_288", "motion_SE_NOCLS_nonlpaug_288"]
DECODE = {"cache_crops": False, "crop_store": False}  # frames decoded per sample (the original's way)
needs_minilm = pytest.mark.skipif(not text_encoder_available("all-MiniLM-L6-v2"), reason="packaged MiniLM missing")
SENTENCES = ["A red pickup truck turns left at the intersection.", "A white SUV.",
             "A gray sedan goes straight down the street behind a bus."]


def _small(**model: object) -> dict:
    m = {"backbone": "test_efficientnet", "backbone_weights": None, "image_size": 32, "embed_dim": 32,
         "text_encoder": "all-MiniLM-L6-v2", "static_padding_size": None, "backbone_kwargs": {}}
    m.update(model)
    return {"model": m}


@pytest.mark.parametrize("name", PAPER)
def test_paper_settings_are_the_original_ones(name: str) -> None:
    c = load_config(f"params/{name}.yaml")
    m, d, t = c.model, c.data, c.train
    assert m.text_max_length is None and m.text_dropout and not d.cache_text  # batch padding, dropout, every step
    assert not m.id_on_normalised and m.id_classes == "train_file"
    assert not t.drop_last and t.lr_decay_from == "warmup_end" and t.checkpoint == "best_train_top1"
    assert t.amp is False  # float32
    if m.backbone.startswith("tf_efficientnet"):
        assert f"{m.backbone}.aa_in1k" in m.backbone_weights
        assert m.backbone_kwargs == {"drop_path_rate": 0.2, "bn_momentum": 0.01}
    cpu = load_config(f"params/{name}_cpu.yaml")  # the CPU variants inherit the published rules but the text path:
    # their recipe caches the frozen encoder's features (docs/cpu_variants.md), with the time-coloured motion maps
    assert (cpu.model.text_max_length, cpu.data.cache_text, cpu.data.motion_variant) == (None, True, "ramp")
    assert c.data.motion_variant == "published"
    assert (cpu.train.drop_last, cpu.train.lr_decay_from, cpu.train.checkpoint) == (
        False, "warmup_end", "best_train_top1")


@needs_minilm
def test_frozen_text_encoder_dropout_in_training_and_batch_padding() -> None:
    enc = FrozenTextEncoder("all-MiniLM-L6-v2", "mean_all", None)
    a, b = enc.encode_batch(SENTENCES, train=True), enc.encode_batch(SENTENCES, train=True)
    assert not torch.allclose(a, b)  # dropout active: two training passes differ
    e1, e2 = enc.encode_batch(SENTENCES), enc.encode_batch(SENTENCES)
    assert torch.equal(e1, e2)  # eval mode: deterministic
    alone = enc.encode_batch([SENTENCES[1]])
    assert not torch.allclose(alone[0], e1[1], atol=1e-4)  # padded to the batch's longest: padding in the mean
    # the cache option: each sentence encoded alone, in eval mode, identical every time
    assert not enc.batch_independent and torch.allclose(enc.encode([SENTENCES[1]])[0], alone[0])
    assert torch.equal(enc.encode(SENTENCES), enc.encode(SENTENCES))


@needs_minilm
def test_cache_option_gives_identical_features(tmp_path: Path) -> None:
    enc = FrozenTextEncoder("all-MiniLM-L6-v2", "mean_all", None)
    c1 = TextFeatureCache(enc, tmp_path).get(SENTENCES)
    c2 = TextFeatureCache(FrozenTextEncoder("all-MiniLM-L6-v2", "mean_all", None), tmp_path).get(SENTENCES)
    assert (c1 == c2).all()


@needs_minilm
def test_training_step_text_path_uses_dropout_unless_cached(tmp_path: Path) -> None:
    data, prep = make_mini_dataset(tmp_path / "mini")
    fam = get_family("dual_stream")
    ctx = TrainContext.create(data, prep, device="cpu", workers=0)
    ids = load_split(prep)["train"]
    cfg = load_config(f"params/{PAPER[2]}.yaml", {**tiny_overrides(), "data": {**DECODE,
                                                                                "cache_text": False}})
    ds = fam.train_dataset(cfg, ctx, ids)
    assert ds.model_kwargs["num_classes"] == len(ctx.train_tracks) > len(ids)  # NUM_CLASS: the whole file
    batch = fam.collate([ds[SampleKey(i, 5 + i)] for i in range(4)])
    torch.manual_seed(0)
    model = create_model(cfg, **ds.model_kwargs)
    model.train()
    enc = model.text_encoder
    t1 = enc.encode_batch(batch["sentence"], train=True)
    t2 = enc.encode_batch(batch["sentence"], train=True)
    assert not torch.allclose(t1, t2)
    loss, logs = fam.compute_loss(model, batch, 0)
    assert torch.isfinite(loss) and 0.0 <= logs["train_top1"] <= 1.0
    assert all(p.dtype == torch.float32 for p in model.parameters())  # float32 paper run on CPU
    assert loss.dtype == torch.float32 and t1.dtype == torch.float32  # and its activations
    # the original's validation: the val split as one batch, car pair, frame 0, sentence 2
    val = load_split(prep)["val"]
    orig = fam.original_validation(model, cfg, ctx, val)
    assert 0.0 <= orig["top1"] <= orig["top5"] <= 1.0 and orig["top5"] == 1.0  # 4 val tracks: top-5 is all
    assert model.training  # left as found


def test_id_classifiers_see_the_embeddings_before_normalisation() -> None:
    cfg = load_config(f"params/{PAPER[2]}.yaml", _small())
    m = create_model(cfg, num_classes=7).eval()
    crops = torch.randint(0, 255, (3, 32, 32, 3), dtype=torch.uint8)
    feats = torch.randn(3, m.text_width)
    with torch.no_grad():
        out = m(crops, crops, feats)
        t = m.text_embedding(feats)
        car = m.crop_embedding(crops)
        assert torch.allclose(out["id_logits"][0], m.id_cls_car(car), atol=1e-5)  # car_idloss
        assert torch.allclose(out["id_logits"][2], m.id_cls_share(t), atol=1e-5)  # share on the text, unnormalised
        norm = create_model(load_config(f"params/{PAPER[2]}.yaml", _small(id_on_normalised=True)), num_classes=7)
        norm.load_state_dict(m.state_dict())
        o2 = norm.eval()(crops, crops, feats)
        assert torch.allclose(o2["id_logits"][2], m.id_cls_share(F.normalize(t, dim=-1)), atol=1e-5)


@pytest.mark.parametrize("name", PAPER[:2])
def test_efficientnet_as_the_authors_built_it(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(f"params/{name}.yaml", {"model": {"backbone_weights": None, "image_size": 64,
                                                        "text_encoder": "all-MiniLM-L6-v2"}})
    from lib.families.backbones import create_backbone

    bb = create_backbone(cfg.model.backbone, None, **cfg.model.backbone_kwargs)
    bns = [mod for mod in bb.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
    assert bns and all(b.momentum == 0.01 and b.eps == 1e-3 for b in bns)
    drops = [mod.drop_prob for mod in bb.modules() if type(mod).__name__ == "DropPath"]
    assert drops and max(drops) == pytest.approx(0.2, abs=0.02)  # timm ramps the rate to 0.2 over the blocks
    monkeypatch.setenv("CFNL_MODELS_DIR", str(tmp_path))
    with pytest.raises(MissingWeightsError, match=rf"{cfg.model.backbone}\.aa_in1k"):
        create_model(load_config(f"params/{name}.yaml", {"model": {"text_encoder": "all-MiniLM-L6-v2"}}))
