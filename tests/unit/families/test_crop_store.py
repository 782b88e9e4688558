"""The crop store: JPEG crops in camera shards equal the direct crops within JPEG tolerance, an edit rebuilds only
its camera's shard, DataLoader workers read it, and both families train on it with the same draws as the
per-sample path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from lib.cityflow import Layout
from lib.config import ConfigError
from lib.families import load_config
from lib.families.base import SampleKey, TrainContext, get_family
from lib.families.crop_store import CropStore, psnr
from lib.families.gallery import expand_crop_fn
from lib.families.instance.data import gallery_crop_fn
from lib.frame_io import load_rgb
from lib.io import read_json
from lib.prep import load_split
from tests.helpers.instance_configs import small_cpu_overrides
from tests.helpers.track_dataset import make_mini_dataset, tiny_overrides

P1 = "params/motion_SE_3CLS_nonlpaug_288.yaml"
P2 = "b36_lr1_w20_clip_e100_dd_drop0.9_CROP256_nseg3_pad0.2_cpu"


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_mini_dataset(tmp_path_factory.mktemp("store"), n_tracks=12, n_frames=5, n_val=4)


def _direct(layout: Layout, tr: dict, pos: int, fn) -> np.ndarray:
    return fn(load_rgb(layout.frame_path(tr["frames"][pos])), tr["boxes"][pos])


@pytest.fixture(scope="module")
def rendered(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny synthetic preset (rendered vehicles on textured roads) with its frames extracted, in a copy."""
    import shutil

    from lib.frames import extract_dataset

    root = tmp_path_factory.mktemp("rendered") / "tiny"
    shutil.copytree(tiny_dataset, root)
    extract_dataset(root, only_referenced=True, workers=1, progress=False)
    return root


@pytest.mark.parametrize("geometry", ["expand", "pad"])
def test_store_holds_every_crop_within_jpeg_tolerance(rendered: Path, tmp_path: Path, geometry: str) -> None:
    layout = Layout.of(rendered)
    tracks = dict(list(read_json(layout.train_tracks).items())[:10])
    fn = expand_crop_fn(1.6, 96) if geometry == "expand" else gallery_crop_fn(0.1, 96)
    store = CropStore(tmp_path, f"{geometry}_test", fn)
    info = store.build(layout, tracks, progress=False)
    n = sum(len(t["frames"]) for t in tracks.values())
    assert info["crop_store_crops"] == n and info["crop_store_shards_built"] == info["crop_store_shards"]
    shards = sorted(p.name for p in store.folder.iterdir())
    assert all(s.endswith((".jpgs", ".json")) for s in shards) and len(shards) == 2 * info["crop_store_shards"]
    # recorded fidelity (measured here at quality 95, 4:4:4: mean |diff| ~0.4-0.7 levels, worst crop >= 40 dB)
    assert info["crop_store_mean_abs_diff"] < 1.5 and info["crop_store_min_psnr_db"] >= 35
    for u, tr in list(tracks.items())[:4]:
        for pos in (0, len(tr["frames"]) - 1):
            got, want = store.read(u, pos), _direct(layout, tr, pos, fn)
            assert got.shape == want.shape == (96, 96, 3) and got.dtype == np.uint8
            assert psnr(got, want) >= 35 and np.abs(got.astype(int) - want).mean() < 1.5
    again = CropStore(tmp_path, f"{geometry}_test", fn).build(layout, tracks, progress=False)
    assert again["crop_store_shards_built"] == 0  # nothing changed: nothing rebuilt


def test_an_edited_track_rebuilds_only_its_camera(mini: tuple[Path, Path], tmp_path: Path) -> None:
    layout = Layout.of(mini[0])
    tracks = read_json(layout.train_tracks)
    fn = expand_crop_fn(1.0, 32)
    store = CropStore(tmp_path, "e", fn)
    assert store.build(layout, tracks, progress=False)["crop_store_shards_built"] == 2  # two cameras
    edited = copy.deepcopy(tracks)
    u = next(iter(edited))
    edited[u]["boxes"][0] = [1, 1, 20, 12]
    assert store.missing(edited) == [u] and len(store.stale(layout, edited)) == 1
    assert store.build(layout, edited, progress=False)["crop_store_shards_built"] == 1
    assert store.missing(edited) == []
    (store.folder / ".S01_c001.json.interrupted.json").write_text("{not json")  # a write killed half-way
    assert CropStore(tmp_path, "e", fn).missing(edited) == []
    assert np.abs(store.read(u, 0).astype(int) - _direct(layout, edited[u], 0, fn)).mean() < 1.5
    with pytest.raises(KeyError, match="no crops of track nope"):
        store.read("nope", 0)
    with pytest.raises(IndexError, match=f"track {u} has 5 frames, asked for 9"):
        store.read(u, 9)


def test_workers_read_the_store(mini: tuple[Path, Path], tmp_path: Path) -> None:
    layout = Layout.of(mini[0])
    tracks = read_json(layout.train_tracks)
    store = CropStore(tmp_path, "e", expand_crop_fn(1.0, 32))
    store.build(layout, tracks, workers=2, progress=False)  # shards built by worker processes
    keys = [(u, p) for u, t in tracks.items() for p in range(len(t["frames"]))]

    class Items(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(keys)

        def __getitem__(self, i: int) -> torch.Tensor:
            return torch.from_numpy(store.read(*keys[i]))

    store.read(*keys[0])  # the parent opened a descriptor: the forked workers must open their own
    got = list(torch.utils.data.DataLoader(Items(), batch_size=None, num_workers=2))
    assert all(torch.equal(g, torch.from_numpy(store.read(*k))) for g, k in zip(got, keys))


def test_too_low_quality_is_an_error_naming_the_option(mini: tuple[Path, Path], tmp_path: Path) -> None:
    layout = Layout.of(mini[0])
    store = CropStore(tmp_path, "e", expand_crop_fn(1.0, 32), quality=50, min_psnr=80.0)
    with pytest.raises(ValueError, match="raise data.crop_store_quality or set data.crop_store: false"):
        store.build(layout, read_json(layout.train_tracks), progress=False)
    assert not list((tmp_path / "crop_store" / "e").glob("*.jpgs"))  # nothing half-written left


def test_part_one_trains_on_the_store_with_the_same_draws(mini: tuple[Path, Path], tmp_path: Path) -> None:
    fam = get_family("dual_stream")
    ids = load_split(mini[1])["train"]
    base = {"cache_crops": False, "cache_text": False}
    plain = load_config(P1, {**tiny_overrides(), "data": base})
    stored = load_config(P1, {**tiny_overrides(), "data": {**base, "crop_store": True}})
    ctx = TrainContext.create(mini[0], mini[1], device="cpu", workers=0, cache_dir=tmp_path / "cache")
    with pytest.raises(RuntimeError, match="call prepare"):
        fam.train_dataset(stored, ctx, ids)
    info = fam.prepare(stored, ctx, ids)
    assert info["crop_store_crops"] == 5 * len(ids) and info["crop_store_min_psnr_db"] >= 35
    a, b = fam.train_dataset(plain, ctx, ids), fam.train_dataset(stored, ctx, ids)
    for seed in range(20):
        key = SampleKey(seed % len(ids), seed)
        x, y = a[key], b[key]
        assert a.choices(key) == b.choices(key) and x["sentence"] == y["sentence"]
        assert torch.equal(x["motion"], y["motion"]) and x["crop"].shape == y["crop"].shape
        assert (x["crop"].int() - y["crop"].int()).abs().float().mean() < 1.5
    with pytest.raises(ConfigError, match="two crop caches"):
        load_config(P1, {**tiny_overrides(), "data": {"cache_crops": True, "crop_store": True}})


def test_part_two_trains_on_the_store_with_the_same_draws(mini: tuple[Path, Path], tmp_path: Path) -> None:
    fam = get_family("instance")
    ids = load_split(mini[1])["train"]
    plain = load_config(P2, small_cpu_overrides())
    stored = load_config(P2, {**small_cpu_overrides(), "data": {"multi": 1, "crop_store": True}})
    ctx = TrainContext.create(mini[0], mini[1], device="cpu", workers=0, cache_dir=tmp_path / "cache")
    assert fam.prepare(plain, ctx, ids) == {}  # the published path builds nothing
    info = fam.prepare(stored, ctx, ids)
    assert info["crop_store_crops"] == 5 * len(ids)
    a, b = fam.train_dataset(plain, ctx, ids), fam.train_dataset(stored, ctx, ids)
    for seed in range(12):
        x, y = a[SampleKey(seed, seed)], b[SampleKey(seed, seed)]
        assert x["text"] == y["text"] and x["label"] == y["label"]
        # normalised to [-1, 1]: 1.5 grey levels = 0.012; the same random crop, erasing and frames were drawn
        assert x["images"].shape == y["images"].shape and (x["images"] - y["images"]).abs().mean() < 0.012


def test_the_paper_configurations_train_on_the_store() -> None:
    from lib.paths import PARAMS

    for path in sorted(PARAMS.glob("*.yaml")):
        name = path.stem
        cfg = load_config(name)
        assert cfg.data.crop_store is not name.endswith("_cpu"), name


def _device_batches(mini: tuple[Path, Path], tmp_path: Path, flip: float) -> tuple[dict, dict, Any]:
    fam = get_family("dual_stream")
    ids = load_split(mini[1])["train"]
    data = {"cache_crops": False, "cache_text": False, "crop_store": True,
            "train_aug": {"p_flip": flip} if flip else {}}
    workers = load_config(P1, {**tiny_overrides(), "data": data})
    device = load_config(P1, {**tiny_overrides(), "data": {**data, "crop_store_decode": "device"}})
    ctx = TrainContext.create(mini[0], mini[1], device="cpu", workers=0, cache_dir=tmp_path / "cache")
    fam.prepare(workers, ctx, ids)
    keys = [SampleKey(i % len(ids), 50 + i) for i in range(8)]
    a = fam.collate([fam.train_dataset(workers, ctx, ids)[k] for k in keys])
    b = fam.collate([fam.train_dataset(device, ctx, ids)[k] for k in keys])
    return a, b, fam


@pytest.mark.parametrize("flip", [0.0, 0.5])
def test_crops_decoded_on_the_device_equal_the_workers_decode(mini: tuple[Path, Path], tmp_path: Path,
                                                              flip: float) -> None:
    """``data.crop_store_decode: device``: the workers pass the stored JPEG bytes, the batch is decoded with
    torchvision's decode_jpeg on the training device (here the CPU) and mirrored where the sample was flipped —
    the same pixels as the workers' OpenCV decode."""
    from lib.families.dual_stream.family import batch_crops

    a, b, _fam = _device_batches(mini, tmp_path, flip)
    assert "crop" not in b and len(b["crop_jpeg"]) == 8 and b["crop_jpeg"][0].dtype == torch.uint8
    if flip:
        assert 0 < int(b["flip"].sum()) < 8  # some samples flipped, some not
    got = batch_crops(b, torch.device("cpu"))
    assert got.shape == a["crop"].shape and got.dtype == torch.uint8 and torch.equal(got, a["crop"])
    assert torch.equal(a["motion"], b["motion"]) and torch.equal(a["label"], b["label"])
    with pytest.raises(ConfigError, match="set data.crop_store: true"):
        load_config(P1, {**tiny_overrides(), "data": {"crop_store": False, "crop_store_decode": "device"}})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (nvjpeg)")
def test_crops_decoded_with_nvjpeg_match_the_cpu(mini: tuple[Path, Path], tmp_path: Path) -> None:
    from lib.families.dual_stream.family import batch_crops

    a, b, _fam = _device_batches(mini, tmp_path, 0.5)
    got = batch_crops(b, torch.device("cuda")).cpu()
    assert got.shape == a["crop"].shape and (got.int() - a["crop"].int()).abs().max() <= 2  # IDCT rounding


def test_training_with_device_decode_gives_the_same_weights(mini: tuple[Path, Path], tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from lib.train import train

    data = {"cache_crops": False, "cache_text": True, "crop_store": True}
    for name, extra in (("workers", {}), ("device", {"crop_store_decode": "device"})):
        cfg = load_config(P1, {**tiny_overrides(), "data": {**data, **extra}})
        train(cfg, *mini, tmp_path / name, progress=False, log=lambda _m: None, cache_dir=tmp_path / "cache")
    a, b = (load_file(str(tmp_path / n / "last.safetensors")) for n in ("workers", "device"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_frame_file_written_again_rebuilds_its_camera(mini: tuple[Path, Path], tmp_path: Path) -> None:
    """The shard key covers the frame files (size, mtime): frames extracted again are cut again."""
    import os
    import shutil

    data = tmp_path / "data"
    shutil.copytree(mini[0], data)
    layout = Layout.of(data)
    tracks = read_json(layout.train_tracks)
    store = CropStore(tmp_path, "e", expand_crop_fn(1.0, 32))
    store.build(layout, tracks, progress=False)
    assert store.is_complete(layout, tracks)
    frame = layout.frame_path(next(iter(tracks.values()))["frames"][0])
    st = frame.stat()
    os.utime(frame, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert len(store.stale(layout, tracks)) == 1
    assert store.build(layout, tracks, progress=False)["crop_store_shards_built"] == 1
