"""Part Two model and family: the three paper configurations (one training step, no weights), the architecture as
published, the fidelity switches, the schedule, and the gallery/query aggregation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lib.config import merge
from lib.families import create_model, load_config
from lib.families.base import SampleKey, TrainContext, get_family
from lib.families.instance.family import lr_factor
from lib.frame_io import load_rgb
from tests.helpers.instance_configs import NO_WEIGHTS, make_roberta_folder, small_cpu_overrides
from tests.helpers.track_dataset import make_mini_dataset

PAPER = ["b48_lr1_w20_clip_e120_dd", "b36_lr1_w20_clip_e100_dd_drop0.9_CROP256_nseg3_pad0.2",
         "b48_lr1_w20_clip_e100_dd_drop0.75_CROP320_pad0.2"]


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("instance_mini")
    return make_mini_dataset(root, n_tracks=12, n_frames=5, n_val=4)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("models")
    make_roberta_folder(d / "roberta-base")
    make_roberta_folder(d / "roberta-small", small=True)
    return d


@pytest.fixture()
def with_models(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CFNL_MODELS_DIR", str(models_dir))
    return models_dir


def _one_step(name: str, mini: tuple[Path, Path], overrides: dict) -> dict[str, float]:
    torch.manual_seed(0)
    fam = get_family("instance")
    cfg = load_config(name, overrides)
    ctx = TrainContext.create(*mini, device="cpu", workers=0)
    ids = sorted(ctx.train_tracks)[:4]
    fam.prepare(cfg, ctx, ids)  # the paper configurations train on the crop store
    ds = fam.train_dataset(cfg, ctx, ids)
    model = fam.build_model(cfg, **ds.model_kwargs)
    opt, sched = fam.optimizer_and_scheduler(model, cfg, 10)
    batch = fam.collate([ds[SampleKey(i, 100 + i)] for i in range(2)])
    assert batch["images"].shape == (2, cfg.model.nseg, 3, cfg.model.crop_size, cfg.model.crop_size)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    loss, logs = fam.compute_loss(model, batch, 0)
    loss = loss * fam.loss_factor(cfg, 0, 10, len(ds))
    assert torch.isfinite(loss)
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    moved = [k for k, v in model.named_parameters() if not torch.equal(v.detach(), before[k])]
    assert any(k.startswith("backbone.") for k in moved)
    assert any(k.startswith("text_encoder.") for k in moved)
    assert any(k.startswith("classifier.") for k in moved)
    assert "logit_scale" in moved
    return logs


@pytest.mark.parametrize("name", PAPER)
def test_paper_config_one_training_step_small_input(name: str, mini, with_models) -> None:
    """The paper configuration (SE-ResNeXt101, no weights) at 32 px with a 2-layer RoBERTa: one SGD step. The
    full-size variant (RoBERTa-base layout, 256/320 px) is the slow test below."""
    logs = _one_step(name, mini, merge(NO_WEIGHTS, {"model": {"crop_size": 32, "text_encoder": "roberta-small"}}))
    assert logs["contrastive"] > 0 and logs["id"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", PAPER)
def test_paper_config_one_training_step_full_size(name: str, mini, with_models) -> None:
    _one_step(name, mini, NO_WEIGHTS)


def test_paper_configs_need_local_weights(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CFNL_MODELS_DIR", str(tmp_path))
    cfg = load_config(PAPER[0])
    fam = get_family("instance")
    with pytest.raises(FileNotFoundError, match="legacy_seresnext101_32x4d"):
        fam.build_model(cfg, num_classes=3)
    cfg = load_config(PAPER[0], {"model": {"backbone_weights": None}})
    with pytest.raises(FileNotFoundError, match="roberta-base"):
        fam.build_model(cfg, num_classes=3)


def test_paper_settings_are_decoded() -> None:
    a, b, c = (load_config(n) for n in PAPER)
    assert (a.train.batch_size, a.train.lr, a.train.warm_epochs, a.train.epochs, a.train.loss) == (48, 0.01, 20, 120,
                                                                                                    "dd")
    assert (a.model.nseg, a.model.crop_size, a.data.pad, a.model.droprate) == (1, 256, 0.0, 0.5)
    assert (b.train.batch_size, b.train.epochs, b.model.nseg, b.model.crop_size, b.data.pad, b.model.droprate) == (
        36, 100, 3, 256, 0.2, 0.9)
    assert (c.train.batch_size, c.train.epochs, c.model.nseg, c.model.crop_size, c.data.pad, c.model.droprate) == (
        48, 100, 1, 320, 0.2, 0.75)
    for cfg in (a, b, c):  # published behaviour behind every fidelity switch
        assert cfg.model.text_pooling == "all_tokens" and cfg.data.text_wrap == "literal_cls_sep"
        assert cfg.embed.test_pad == "as_trained" and cfg.train.lr_drop_one_epoch_early
        assert cfg.part == "two" and cfg.ensemble_weight == 1.0 and cfg.embed.frames == 4


def _small_model(name: str, with_models: Path, **model: object):
    over = merge(NO_WEIGHTS, {"model": {"backbone": "legacy_seresnext26_32x4d", "crop_size": 64,
                                         "text_encoder": "roberta-small", "proj_dim": 32, **model}})
    cfg = load_config(name, over)
    return cfg, create_model(cfg, num_classes=5)


def test_architecture_as_published(with_models) -> None:
    cfg, m = _small_model(PAPER[0], with_models)
    assert m.backbone.layer4[0].conv2.stride == (1, 1) and m.backbone.layer4[0].downsample[0].stride == (1, 1)
    assert torch.all(m.pool_avg.p == 1) and torch.all(m.pool_max.p == 5) and m.pool_segments is None
    assert m.pool_avg.p.shape == (2048,) and float(m.logit_scale.detach()) == 1.0
    assert isinstance(m.visual_fc[0], torch.nn.BatchNorm1d) and m.visual_fc[1].out_features == 32
    assert m.lang_fc[0].num_features == 2 * 64  # mean || max of the text width
    blk = m.classifier
    assert blk.add_block[0].out_features == 512 and isinstance(blk.add_block[1], torch.nn.BatchNorm1d)
    assert isinstance(blk.classifier[0], torch.nn.Dropout) and blk.classifier[1].out_features == 5
    x = torch.randn(2, 1, 3, 64, 64)
    assert m.backbone.forward_features(x[:, 0]).shape[-1] == 4  # 64 / 16: stride-1 last stage
    # the embedding is taken before the dropout
    m.train()
    e1, l1 = m.encode_images(x)
    e2, l2 = m.encode_images(x)
    assert torch.allclose(e1, e2) and not torch.allclose(l1, l2)
    _, m3 = _small_model(PAPER[1], with_models)
    assert m3.backbone.layer4[0].conv2.stride == (2, 2) and torch.all(m3.pool_segments.p == 3)
    assert m3.backbone.forward_features(x[:, 0]).shape[-1] == 2
    e, _ = m3.encode_images(torch.randn(2, 3, 3, 64, 64))
    assert e.shape == (2, 512)


def test_shared_classblock_sees_text_then_visual(with_models) -> None:
    """P2.8: in the forward pass the shared ClassBlock runs on the text features first, so its BatchNorm's running
    statistics are updated by the text batch, then by the visual one."""
    _, m = _small_model(PAPER[0], with_models)
    m.train()
    calls: list[str] = []
    for name in ("lang_fc", "visual_fc", "classifier"):
        getattr(m, name).register_forward_hook(lambda mod, inp, out, n=name: calls.append(n))
    tok = m.tokenizer(["[CLS]A red sedan.[SEP]", "[CLS]A white SUV turns left.[SEP]"], padding="longest",
                      return_tensors="pt")
    bn = m.classifier.add_block[1]
    before = bn.running_mean.clone()
    m(torch.randn(2, 1, 3, 64, 64), tok["input_ids"], tok["attention_mask"])
    assert calls == ["lang_fc", "classifier", "visual_fc", "classifier"]
    assert not torch.equal(bn.running_mean, before)


def test_param_groups_follow_the_published_rates(with_models) -> None:
    cfg, m = _small_model(PAPER[1], with_models)
    opt, _ = get_family("instance").optimizer_and_scheduler(m, cfg, 10)
    assert isinstance(opt, torch.optim.SGD)
    rates = {g["name"]: (g["lr"], g["momentum"], g["nesterov"], g["weight_decay"]) for g in opt.param_groups}
    assert rates == {"backbone": (0.001, 0.9, True, 5e-4), "text": (0.001, 0.9, True, 5e-4),
                     "heads": (0.01, 0.9, True, 5e-4)}
    slow = {id(p) for p in opt.param_groups[0]["params"]}
    assert id(m.logit_scale) in slow and id(m.pool_avg.p) in slow and id(m.pool_segments.p) in slow


def test_schedule_drops_one_epoch_early_as_published() -> None:
    lr = [lr_factor(e * 10, 10, 120, [0.8, 0.95], 0.1, True) for e in range(120)]
    assert lr[94] == 1.0 and math.isclose(lr[95], 0.1) and math.isclose(lr[112], 0.1)
    assert math.isclose(lr[113], 0.01)
    fixed = [lr_factor(e * 10, 10, 120, [0.8, 0.95], 0.1, False) for e in range(120)]
    assert fixed[95] == 1.0 and math.isclose(fixed[96], 0.1) and math.isclose(fixed[114], 0.01)
    assert lr_factor(9, 10, 100, [0.8, 0.95], 0.1, True) == 1.0  # within an epoch the rate is constant


def test_text_switches(with_models) -> None:
    _, pub = _small_model(PAPER[0], with_models)
    pub.eval()
    ids = pub.tokenize(pub.prepare_texts(["A Sedan."]))["input_ids"][0].tolist()
    toks = pub.tokenizer.convert_ids_to_tokens(ids)
    assert toks[0] == "<s>" and toks[-1] == "</s>" and "".join(toks[1:6]) == "[CLS]"  # literal text
    short, long = "a car", "a very long sentence about a red pickup truck turning left"
    # published pooling: padding included -> a sentence's embedding depends on its batch-mates
    with torch.no_grad():
        alone = pub.encode_text([short])
        batched = pub.encode_text([short, long])[:1]
    assert not torch.allclose(alone, batched, atol=1e-5)
    cfg, fixed = _small_model(PAPER[0], with_models, text_pooling="masked")
    fixed.load_state_dict(pub.state_dict())
    fixed.eval()
    with torch.no_grad():
        assert torch.allclose(fixed.encode_text([short]), fixed.encode_text([short, long])[:1], atol=1e-5)
    cfg, nowrap = _small_model(PAPER[0], with_models, text_pooling="masked")
    nowrap.text_wrap = load_config(PAPER[0], {"data": {"text_wrap": "none"}}).data.text_wrap
    assert nowrap.prepare_texts(["A Sedan."]) == ["A sedan."]


def test_gallery_and_queries_aggregate_as_published(mini, with_models) -> None:
    fam = get_family("instance")
    cfg = load_config(PAPER[2], small_cpu_overrides())  # the training pad by default (0.2)
    ctx = TrainContext.create(*mini, device="cpu", workers=0)
    tracks = {u: ctx.train_tracks[u] for u in sorted(ctx.train_tracks)[:3]}
    model = fam.build_model(cfg, num_classes=4).eval()
    g = fam.embed_gallery(model, cfg, ctx, tracks)
    assert g.shape == (3, 512) and np.allclose(np.linalg.norm(g, axis=1), 1, atol=1e-5)
    # by hand: frames floor(linspace(0, 5, 4, endpoint=False)) = 0, 1, 2, 3; crops padded by 0.2 of the frame
    from lib.families.instance import data as D

    tr = tracks[next(iter(tracks))]
    crops = [D.eval_transform(D.crop_frame(np.asarray(load_rgb(ctx.data_root.root / tr["frames"][i])), tr["boxes"][i],
                                           0.2, 32)) for i in (0, 1, 2, 3)]
    with torch.no_grad():
        e = F.normalize(model.encode_images(torch.stack(crops))[0], dim=1)
    ref = F.normalize(e.sum(0), dim=0).numpy()
    assert np.allclose(g[0], ref, atol=1e-5)
    queries = [tr["nl"], tr["nl"][:2], ["a car", "a red car turning left at the crossing", "x"], ["a car"]]
    q = fam.embed_queries(model, cfg, queries)
    assert q.shape == (4, 3, 512) and np.allclose(q[1, 2], 0) and np.allclose(np.linalg.norm(q[0], axis=1), 1)
    with torch.no_grad():  # batched by padded length == each query embedded alone (published all-token pooling)
        for row, sentences in zip(q, queries):
            assert np.allclose(row[:len(sentences)], model.encode_text(sentences).numpy(), atol=1e-5)
    assert not np.allclose(q[2, 0], q[3, 0], atol=1e-4)  # "a car" padded with its batch-mates differs
    s = fam.similarity(q, g)
    qs = q[0].sum(0) / np.linalg.norm(q[0].sum(0))
    assert s.shape == (4, 3) and np.isclose(s[0, 0], qs @ g[0], atol=1e-5)


def test_segment_gallery_is_one_fused_feature(mini, with_models) -> None:
    fam = get_family("instance")
    cfg = load_config(PAPER[1], small_cpu_overrides())
    ctx = TrainContext.create(*mini, device="cpu", workers=0)
    tracks = {u: ctx.train_tracks[u] for u in sorted(ctx.train_tracks)[:3]}
    model = fam.build_model(cfg, num_classes=4).eval()
    g = fam.embed_gallery(model, cfg, ctx, tracks)
    from lib.families.instance import data as D

    tr = tracks[next(iter(tracks))]
    idx = D.eval_frame_indices(len(tr["frames"]), 3, all_if_short=False)  # 0, 1, 3 of 5
    assert idx == [0, 1, 3]
    assert cfg.data.pad == 0.2
    for test_pad, pad in (("as_trained", 0.2), ("zero", 0.0)):  # published: the training pad; defect option: 0
        c = load_config(PAPER[1], merge(small_cpu_overrides(), {"embed": {"test_pad": test_pad}}))
        g = fam.embed_gallery(model, c, ctx, tracks)
        crops = [D.eval_transform(D.crop_frame(np.asarray(load_rgb(ctx.data_root.root / tr["frames"][i])),
                                               tr["boxes"][i], pad, 32)) for i in idx]
        with torch.no_grad():
            ref = F.normalize(model.encode_images(torch.stack(crops)[None])[0], dim=1)[0].numpy()
        assert np.allclose(g[0], ref, atol=1e-5), test_pad


@pytest.mark.parametrize("name, size, cells", [("b48_lr1_w20_clip_e120_dd_cpu", 64, 4),
                                               ("b48_lr1_w20_clip_e100_dd_drop0.75_CROP320_pad0.2_cpu", 80, 5),
                                               ("b36_lr1_w20_clip_e100_dd_drop0.9_CROP256_nseg3_pad0.2_cpu", 64, 2)])
def test_cpu_variant_backbone_follows_the_stride_rule(name: str, size: int, cells: int) -> None:
    """The CPU variants' resnet10t (avg-pool downsample branch) gets the published last-stage stride: one frame ->
    stride 1 (input / 16), several frames -> stride 2 (input / 32)."""
    from lib.families.instance.model import build_backbone

    cfg = load_config(name)
    assert cfg.model.backbone == "resnet10t" and cfg.model.crop_size == size
    net = build_backbone(cfg.model).eval()
    with torch.no_grad():
        fmap = net.forward_features(torch.randn(1, 3, size, size))
    assert fmap.shape[-2:] == (cells, cells)
