"""lib.embed: files and formats, track = mean of its frames, nlpaug queries, resume, both families, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lib import embed
from lib.embeddings import load_member, read_manifest, score_matrix
from lib.families import create_model, load_config
from lib.families.base import TrainContext, get_family
from lib.io import load_npz
from lib.paths import PARAMS
from lib.train.checkpoint import save_weights
from tests.helpers.instance_configs import small_cpu_overrides
from tests.helpers.track_dataset import make_mini_dataset, tiny_overrides

EFF = PARAMS / "motion_effb3_NOCLS_nlpaug_320.yaml"
P2 = PARAMS / "b48_lr1_w20_clip_e120_dd.yaml"
N_TEST = 6


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """The Part One mini dataset plus a test split: 6 of its tracks as test tracks, their nl as queries."""
    data, prep = make_mini_dataset(tmp_path_factory.mktemp("embed_mini"), n_tracks=16, n_frames=4)
    tracks = json.loads((data / "train-tracks.json").read_text())
    aug = json.loads((prep / "text" / "train-tracks_nlpaug.json").read_text())
    test_ids = list(tracks)[:N_TEST]
    gt = {f"q{i:03d}-{u[:8]}": u for i, u in enumerate(test_ids)}
    (data / "test-tracks.json").write_text(json.dumps(
        {u: {"frames": tracks[u]["frames"], "boxes": tracks[u]["boxes"]} for u in test_ids}))
    (data / "test-queries.json").write_text(json.dumps({q: tracks[u]["nl"] for q, u in gt.items()}))
    (data / "test-gt.json").write_text(json.dumps(gt))
    (prep / "text" / "test-queries_nlpaug.json").write_text(json.dumps({q: aug[u]["nl"] for q, u in gt.items()}))
    return data, prep, gt


def _checkpoint(cfg, path: Path, **model_kwargs) -> Path:
    torch.manual_seed(0)
    model = create_model(cfg, **model_kwargs)
    return save_weights(path, model, cfg, step=0, model_kwargs=model_kwargs)


@pytest.fixture(scope="module")
def part_one(mini, tmp_path_factory: pytest.TempPathFactory):
    data, prep, _ = mini
    over = tiny_overrides()
    cfg = load_config(EFF, over)
    root = tmp_path_factory.mktemp("p1")
    ckpt = _checkpoint(cfg, root / "best.safetensors")
    out = root / "embed"
    splits = embed.embed_config(cfg, ckpt, data, prep, out, train_frames=2, workers=0, config_path=str(EFF),
                                overrides=over, log=lambda s: None)
    return cfg, ckpt, out, splits


def test_writes_every_split_in_the_contract_format(mini, part_one) -> None:
    data, prep, gt = mini
    cfg, ckpt, out, splits = part_one
    assert set(splits) == {"test", "val", "train"}
    g = load_npz(out / "gallery.npz")
    q = load_npz(out / "queries.npz")
    test_tracks = json.loads((data / "test-tracks.json").read_text())
    assert g["ids"].tolist() == list(test_tracks)
    assert g["feats"].shape == (N_TEST, 32) and g["feats"].dtype == np.float32
    assert q["ids"].tolist() == list(gt)
    assert q["feats"].shape == (N_TEST, 4, 32)  # nlpaug: 3 prefixed sentences + the chunks sentence
    assert q["n_sentences"].tolist() == [4] * N_TEST
    np.testing.assert_allclose(np.linalg.norm(q["feats"], axis=2), 1.0, atol=1e-5)
    split = json.loads((prep / "split.json").read_text())
    vg, vq, tg = (load_npz(out / f) for f in ("val_gallery.npz", "val_queries.npz", "train_gallery.npz"))
    assert vg["ids"].tolist() == split["val"] and vq["ids"].tolist() == split["val"]
    assert tg["ids"].tolist() == split["train"] and splits["train"]["frames"] == 2 * len(split["train"])
    m = read_manifest(out)
    assert (m["name"], m["family"], m["rule"], m["weight"], m["ablation"]) == (cfg.name, "dual_stream", "mean_dot",
                                                                               4.0, False)
    assert Path(m["config_path"]) == EFF and Path(m["checkpoint"]) == ckpt.resolve()
    info = json.loads((out / "run_info.json").read_text())
    assert info["params"]["config"]["model"]["embed_dim"] == 32 and info["git_commit"]


def test_track_feature_is_the_mean_of_every_frame_embedding(mini, part_one) -> None:
    data, prep, _ = mini
    cfg, ckpt, out, _ = part_one
    from lib.families import load_trained_model

    model = load_trained_model(cfg, ckpt, device="cpu")
    ctx = TrainContext.create(data, prep, device="cpu", workers=0)
    uid, tr = next(iter(ctx.test_tracks.items()))
    fam = get_family(cfg.family)
    per_frame = []
    for f, b in zip(tr["frames"], tr["boxes"]):  # each frame alone, as a one-frame track with the same motion map
        t = {"frames": [f], "boxes": [b]}
        with torch.no_grad():
            per_frame.append(fam.embed_gallery(model, cfg, ctx, {uid: t}, frames_per_track=None)[0])
    g = load_npz(out / "gallery.npz")
    row = g["feats"][g["ids"].tolist().index(uid)]
    np.testing.assert_allclose(row, np.mean(per_frame, axis=0), rtol=1e-4, atol=1e-5)
    assert len(per_frame) == len(tr["frames"])


def test_scores_match_the_family_similarity(part_one) -> None:
    cfg, _, out, _ = part_one
    m = load_member(out, "test")
    g, q = load_npz(out / "gallery.npz"), load_npz(out / "queries.npz")
    ref = get_family(cfg.family).similarity(q["feats"], g["feats"])
    np.testing.assert_allclose(score_matrix(m), ref, rtol=1e-4, atol=1e-5)


def test_resume_skips_finished_splits_and_force_recomputes_the_same(mini, part_one) -> None:
    data, prep, _ = mini
    cfg, ckpt, out, _ = part_one
    before = {f: (out / f).stat().st_mtime_ns for f in ("gallery.npz", "val_gallery.npz", "train_gallery.npz")}
    feats = load_npz(out / "gallery.npz")["feats"]
    logs: list[str] = []
    embed.embed_config(cfg, ckpt, data, prep, out, train_frames=2, workers=0, config_path=str(EFF),
                       overrides=tiny_overrides(), log=logs.append)
    assert sum("skipped" in s for s in logs) == 3
    assert {f: (out / f).stat().st_mtime_ns for f in before} == before
    embed.embed_config(cfg, ckpt, data, prep, out, splits=["test"], train_frames=2, workers=0, force=True,
                       config_path=str(EFF), overrides=tiny_overrides(), log=lambda s: None)
    assert (out / "gallery.npz").stat().st_mtime_ns != before["gallery.npz"]
    np.testing.assert_allclose(load_npz(out / "gallery.npz")["feats"], feats, rtol=1e-5, atol=1e-6)


def test_missing_inputs_are_clear_errors(mini, part_one, tmp_path) -> None:
    data, prep, _ = mini
    cfg, ckpt, _, _ = part_one
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        embed.embed_config(cfg, tmp_path / "nope.safetensors", data, prep, tmp_path / "o", log=lambda s: None)
    empty_prep = tmp_path / "prep"
    (empty_prep / "text").mkdir(parents=True)
    (empty_prep / "split.json").write_text((prep / "split.json").read_text())
    with pytest.raises(FileNotFoundError, match="test-queries_nlpaug.json"):
        embed.test_query_sentences(cfg, data, empty_prep)


def test_crop_only_configuration_is_an_ablation() -> None:
    assert embed.is_ablation(load_config(EFF, {"model": {"motion_stream": False}}))
    assert embed.is_ablation(load_config(PARAMS / "croponly_effb3_NOCLS_nlpaug_320_cpu.yaml"))
    assert embed.is_ablation(load_config(P2, {"ensemble_weight": 0}))
    assert not embed.is_ablation(load_config(EFF))


def test_part_two_and_the_cli(mini, tmp_path, capsys) -> None:
    data, prep, gt = mini
    over = small_cpu_overrides()
    cfg = load_config(P2, over)
    ckpt = _checkpoint(cfg, tmp_path / "p2.safetensors", num_classes=10)
    out = tmp_path / "p2"
    rc = embed.main([str(P2), str(ckpt), "--out", str(out), "--data-root", str(data), "--prep-dir", str(prep),
                     "--splits", "test,val", "--workers", "0", "--override", json.dumps(over)])
    assert rc == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(last["splits"]) == {"test", "val"} and 0 < last["test"]["mrr"] <= 1 and last["val"]["n_queries"] == 4
    g, q = load_npz(out / "gallery.npz"), load_npz(out / "queries.npz")
    assert q["feats"].shape[:2] == (N_TEST, 3)  # Part Two reads the raw test queries
    np.testing.assert_allclose(np.linalg.norm(g["feats"], axis=1), 1.0, atol=1e-5)
    m = read_manifest(out)
    assert (m["family"], m["rule"], m["weight"]) == ("instance", "cosine", 1.0)
    assert not (out / "train_gallery.npz").exists()
