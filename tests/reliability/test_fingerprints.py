"""Content fingerprints: every skipped or cached result is keyed by what it was computed from. An edit recomputes
what read it, and only that; ``--force`` (``CFNL_FORCE=1``) recomputes caches too."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lib import embed
from lib.families import create_model, load_config
from lib.families.weights import save_weights
from lib.io import load_npz
from lib.paths import PARAMS
from tests.helpers.track_dataset import make_mini_dataset, tiny_overrides

EFF = PARAMS / "motion_effb3_NOCLS_nlpaug_320.yaml"
PLAIN = {**tiny_overrides(), "data": {"cache_crops": True, "crop_store": False, "text": "plain"}}


@pytest.fixture()
def mini(tmp_path: Path) -> tuple[Path, Path]:
    data, prep = make_mini_dataset(tmp_path, n_tracks=10, n_frames=3, n_val=2)
    tracks = json.loads((data / "train-tracks.json").read_text())
    test_ids = list(tracks)[:4]
    (data / "test-tracks.json").write_text(json.dumps(
        {u: {"frames": tracks[u]["frames"], "boxes": tracks[u]["boxes"]} for u in test_ids}))
    (data / "test-queries.json").write_text(json.dumps({f"q{i}": tracks[u]["nl"] for i, u in enumerate(test_ids)}))
    return data, prep


def _embed(cfg, ck: Path, data: Path, prep: Path, out: Path) -> dict:
    return embed.embed_config(cfg, ck, data, prep, out, splits=["test"], workers=0, log=lambda s: None)


def test_one_edited_sentence_re_embeds_that_query_and_reuses_the_gallery(mini, tmp_path: Path) -> None:
    data, prep = mini
    cfg = load_config(EFF, PLAIN)
    torch.manual_seed(0)
    ck = save_weights(tmp_path / "best.safetensors", create_model(cfg), cfg, 0, {})
    out = tmp_path / "embed"
    _embed(cfg, ck, data, prep, out)
    g0, q0 = load_npz(out / "gallery.npz"), load_npz(out / "queries.npz")
    assert _embed(cfg, ck, data, prep, out)["test"].get("gallery_reused") is None  # nothing changed: skipped

    queries = json.loads((data / "test-queries.json").read_text())
    queries["q1"][0] = "A purple bus reverses slowly."
    (data / "test-queries.json").write_text(json.dumps(queries))
    rec = _embed(cfg, ck, data, prep, out)["test"]
    assert rec["gallery_reused"] is True
    g1, q1 = load_npz(out / "gallery.npz"), load_npz(out / "queries.npz")
    np.testing.assert_array_equal(g0["feats"], g1["feats"])
    changed = [i for i in range(len(q0["ids"])) if not np.array_equal(q0["feats"][i], q1["feats"][i])]
    assert [str(q1["ids"][i]) for i in changed] == ["q1"]
    assert not np.array_equal(q0["feats"][1, 0], q1["feats"][1, 0])

    # an edited box re-embeds the gallery
    tracks = json.loads((data / "test-tracks.json").read_text())
    u = next(iter(tracks))
    tracks[u]["boxes"][0] = [b + 3 for b in tracks[u]["boxes"][0][:2]] + tracks[u]["boxes"][0][2:]
    (data / "test-tracks.json").write_text(json.dumps(tracks))
    assert not _embed(cfg, ck, data, prep, out)["test"].get("gallery_reused")

    # new weights with the same size and modification time: recomputed (the checkpoint's bytes are hashed)
    st = ck.stat()
    torch.manual_seed(1)
    save_weights(ck, create_model(cfg), cfg, 0, {})
    os.utime(ck, ns=(st.st_atime_ns, st.st_mtime_ns))
    _embed(cfg, ck, data, prep, out)
    assert not np.array_equal(load_npz(out / "gallery.npz")["feats"], g1["feats"])


def test_crop_cache_rebuilds_only_the_edited_track_and_everything_when_forced(mini, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from lib.cityflow import Layout
    from lib.families.dual_stream.cache import CropCache, build_caches

    data, _ = mini
    tracks = json.loads((data / "train-tracks.json").read_text())
    cache = CropCache(tmp_path / "cache", 1.5, 16)
    quiet = {"progress": False, "log": lambda s: None}
    assert build_caches([cache], Layout.of(data), tracks, **quiet)["cache_files_built"] == len(tracks)
    assert build_caches([CropCache(tmp_path / "cache", 1.5, 16)], Layout.of(data), tracks,
                        **quiet)["cache_files_built"] == 0
    u = sorted(tracks)[3]
    before = np.load(cache.path(u)).copy()
    tracks[u]["boxes"][0] = [1, 1, 10, 10]
    cache = CropCache(tmp_path / "cache", 1.5, 16)
    assert build_caches([cache], Layout.of(data), tracks, **quiet)["cache_files_built"] == 1
    assert not np.array_equal(before, np.load(cache.path(u)))
    monkeypatch.setenv("CFNL_FORCE", "1")
    assert build_caches([cache], Layout.of(data), tracks, **quiet)["cache_files_built"] == len(tracks)


def _camera(root: Path, cam: str = "train/S01/c001", n: int = 10) -> list[str]:
    import cv2

    (root / cam / "img1").mkdir(parents=True)
    rels = []
    for k in range(1, n + 1):
        img = np.full((48, 64, 3), 30 + 15 * k, np.uint8)
        cv2.imwrite(str(root / cam / "img1" / f"{k:06d}.jpg"), img)
        rels.append(f"{cam}/img1/{k:06d}.jpg")
    return rels


def test_motion_maps_rebuild_the_edited_track_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lib.motion.maps import build_motion_maps

    data = tmp_path / "data"
    rels = _camera(data)
    tracks = {f"t{i}": {"frames": rels, "boxes": [[2 + 3 * i, 2, 12, 10]] * len(rels), "nl": ["a car."] * 3}
              for i in range(3)}
    (data / "train-tracks.json").write_text(json.dumps(tracks))
    (data / "test-tracks.json").write_text("{}")
    out = tmp_path / "motion"
    kw = {"workers": 1, "progress": False}
    assert build_motion_maps(data, out, **kw).to_dict()["written"] == 3
    r = build_motion_maps(data, out, **kw).to_dict()
    assert r["written"] == 0 and r["skipped_cameras"] == 1
    tracks["t1"]["boxes"][1] = [30, 20, 12, 10]
    (data / "train-tracks.json").write_text(json.dumps(tracks))
    assert build_motion_maps(data, out, **kw).to_dict()["written"] == 1
    monkeypatch.setenv("CFNL_FORCE", "1")
    assert build_motion_maps(data, out, **kw).to_dict()["written"] == 3


def test_pipeline_fingerprints_see_the_data_each_step_reads(mini, tmp_path: Path) -> None:
    from lib.pipeline import STEPS, data_fingerprint

    data, _ = mini
    root = tmp_path / "copy"
    shutil.copytree(data, root)
    before = {s: data_fingerprint(s, root) for s in STEPS}
    q = json.loads((root / "test-queries.json").read_text())
    q["q0"][0] = "An edited sentence."
    (root / "test-queries.json").write_text(json.dumps(q))
    after = {s: data_fingerprint(s, root) for s in STEPS}
    changed = sorted(s for s in STEPS if before[s] != after[s])
    assert changed == ["00_data", "03_text_augmentation", "05_embed", "06_ensemble"]
    assert data_fingerprint("00_data", root, real=False) == data_fingerprint("00_data", data, real=False)
