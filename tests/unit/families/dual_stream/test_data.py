"""Part One data path: sampling, the crop / motion caches (same pixels as decoding), the gallery loader (decode once
per frame = decode per crop), cached vs decoded gallery embeddings, and the frozen text features and their cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lib.cityflow import Layout
from lib.embed import subsample_frames
from lib.families import load_config
from lib.families.base import SampleKey, TrainContext, evenly_spaced, get_family
from lib.families.dual_stream.data import track_sentences
from lib.families.gallery import expand_crop_fn, iter_crop_batches, plan_requests
from lib.families.text_encoders import FrozenTextEncoder, TextFeatureCache, resolve_text_encoder
from lib.prep import load_split
from tests.helpers.track_dataset import make_mini_dataset, tiny_overrides  # noqa: E402

CFG = "params/motion_SE_3CLS_nonlpaug_288.yaml"
DECODE = {"cache_crops": False, "crop_store": False}  # frames decoded per sample (the original's way)


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_mini_dataset(tmp_path_factory.mktemp("mini"), n_frames=6)


def _ctx(mini: tuple[Path, Path], cache: Path | None = None) -> TrainContext:
    return TrainContext.create(mini[0], mini[1], device="cpu", workers=0, cache_dir=cache)


def test_samples_follow_the_published_rule_and_the_cache_changes_nothing(mini: tuple[Path, Path],
                                                                         tmp_path: Path) -> None:
    fam = get_family("dual_stream")
    ids = load_split(mini[1])["train"]
    plain = load_config(CFG, {**tiny_overrides(), "data": {**DECODE, "cache_text": False}})
    cached = load_config(CFG, tiny_overrides())
    ctx = _ctx(mini, tmp_path / "cache")
    info = fam.prepare(cached, ctx, ids)
    assert info["cache_files_built"] == 2 * len(ids) and info["text_features_computed"] == 3 * len(ids)
    assert fam.prepare(cached, ctx, ids)["cache_files_built"] == 0  # resumable: nothing left to do
    a, b = fam.train_dataset(plain, ctx, ids), fam.train_dataset(cached, ctx, ids)
    assert a.model_kwargs == {"num_classes": len(ctx.train_tracks)}  # published NUM_CLASS: the whole file
    frames, sents = set(), set()
    for seed in range(40):
        key = SampleKey(seed % len(ids), seed)
        x, y = a[key], b[key]
        assert torch.equal(x["crop"], y["crop"]) and torch.equal(x["motion"], y["motion"])
        assert x["label"] == y["label"] == key.index
        f, s = a.choices(key)
        frames.add(f)
        sents.add(s)
        # the cached text feature is the frozen encoder's feature of the sampled sentence, encoded alone
        assert x["sentence"] == a.sentences[key.index][s]
        enc = FrozenTextEncoder("all-MiniLM-L6-v2", "mean_all")  # the config's: each sentence alone
        assert torch.allclose(y["text"], enc.encode([x["sentence"]])[0], atol=1e-5)
        assert x["crop"].shape == (32, 32, 3) and x["crop"].dtype == torch.uint8
    assert frames == set(range(6)) and sents == {0, 1, 2}  # any frame, one of the first 3 sentences
    assert a[SampleKey(3, 99)]["sentence"] == a[SampleKey(3, 99)]["sentence"]  # deterministic by key


def test_nlpaug_and_plain_sentences(mini: tuple[Path, Path]) -> None:
    ctx = _ctx(mini)
    ids = load_split(mini[1])["train"][:2]
    plain = track_sentences(mini[1], ctx.train_tracks, ids, "plain")
    aug = track_sentences(mini[1], ctx.train_tracks, ids, "nlpaug")
    assert [len(s) for s in plain] == [3, 3] and [len(s) for s in aug] == [4, 4]
    assert aug[0][0].endswith(plain[0][0]) and aug[0][0] != plain[0][0]
    with pytest.raises(FileNotFoundError, match="train-tracks_nlpaug.json"):
        track_sentences(mini[1] / "absent", ctx.train_tracks, ids, "nlpaug")


def test_gallery_decodes_each_frame_once_and_gives_the_same_crops(mini: tuple[Path, Path]) -> None:
    layout = Layout.of(mini[0])
    from lib.cityflow import load_tracks

    tracks = load_tracks(layout.train_tracks)
    # two tracks sharing frames: the second uses the first's frames with other boxes
    first = next(iter(tracks.values()))
    tracks = dict(tracks)
    tracks["shared"] = {"frames": first["frames"], "boxes": [[b[0] + 5, b[1], b[2], b[3]] for b in first["boxes"]]}
    plan = plan_requests(tracks, frames_per_track=3)
    assert len(plan["train/S01/c001/img1/000001.jpg"]) == 2
    crop_fn = expand_crop_fn(1.5, 24)
    got = {}
    for once in (True, False):
        seen = {}
        for t, p, c in iter_crop_batches(layout, tracks, crop_fn, frames_per_track=3, batch_size=7,
                                         decode_once=once):
            assert len(t) <= 7 and c.dtype == torch.uint8 and c.shape[1:] == (24, 24, 3)
            for ti, pi, ci in zip(t, p, c):
                seen[(int(ti), int(pi))] = ci
        got[once] = seen
    assert got[True].keys() == got[False].keys()
    assert len(got[True]) == sum(len(evenly_spaced(len(tr["frames"]), 3)) for tr in tracks.values())
    assert all(torch.equal(got[True][k], got[False][k]) for k in got[True])
    # decoding threads change nothing: same batches, same order, same pixels as the plain loop
    plain = list(iter_crop_batches(layout, tracks, crop_fn, frames_per_track=3, batch_size=7, decode_threads=1))
    threaded = list(iter_crop_batches(layout, tracks, crop_fn, frames_per_track=3, batch_size=7, decode_threads=3))
    assert len(plain) == len(threaded) > 1
    for (t1, p1, c1), (t2, p2, c2) in zip(plain, threaded):
        assert np.array_equal(t1, t2) and np.array_equal(p1, p2) and torch.equal(c1, c2)


def test_cache_build_threads_and_processes_write_the_same_files(mini: tuple[Path, Path], tmp_path: Path) -> None:
    from lib.families.dual_stream.cache import CropCache, MotionCache, build_caches

    ctx = _ctx(mini)
    tracks = dict(list(ctx.train_tracks.items())[:4])
    got = {}
    for workers in (0, 1):
        caches = [CropCache(tmp_path / f"w{workers}", 1.5, 16), MotionCache(tmp_path / f"w{workers}", mini[1],
                                                                               "published", 16)]
        rec = build_caches(caches, ctx.data_root, tracks, workers=workers, progress=workers == 0, log=lambda s: None)
        assert rec["cache_files_built"] == 2 * len(tracks)
        got[workers] = [c.load(u) for c in caches for u in tracks]
    assert all(np.array_equal(a, b) for a, b in zip(got[0], got[1], strict=True))


def test_gallery_embedding_fills_the_crop_cache_once(mini: tuple[Path, Path], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """With data.cache_crops a gallery's crops go into the shared crop cache (decoded once for every configuration
    of that crop area and size); the embedding is the decoded one."""
    from lib.families.dual_stream.cache import CropCache

    fam = get_family("dual_stream")
    split = load_split(mini[1])
    cfg = load_config(CFG, tiny_overrides())
    decoded = load_config(CFG, {**tiny_overrides(), "data": DECODE})
    ctx = _ctx(mini, tmp_path / "cache")
    tracks = {u: ctx.train_tracks[u] for u in split["val"]}
    cache = CropCache(ctx.cache_dir, cfg.data.crop_area, cfg.model.image_size)
    assert not any(cache.is_complete(u, t) for u, t in tracks.items())
    torch.manual_seed(0)
    model = fam.build_model(cfg, num_classes=3).eval()
    g1 = fam.embed_gallery(model, cfg, ctx, tracks, frames_per_track=None)
    assert all(cache.is_complete(u, t) for u, t in tracks.items())
    assert np.allclose(g1, fam.embed_gallery(model, decoded, ctx, tracks, frames_per_track=None), atol=1e-5)
    # a subset of a track's frames (lib.embed's train split) reads those frames' rows of the whole track's cache
    # file (nothing decoded), the same crops as decoding them; the whole tracks' files stay as they are
    files = {u: cache.path(u).stat().st_mtime_ns for u in tracks}
    subset = {u: subsample_frames(t, 2) for u, t in tracks.items()}
    want = fam.embed_gallery(model, decoded, ctx, subset, frames_per_track=None)
    import lib.families.dual_stream.family as family_module

    def no_decode(*a: object, **k: object) -> None:
        raise AssertionError("decoded although the crops are cached")

    monkeypatch.setattr(family_module, "embed_tracks", no_decode)
    g2 = fam.embed_gallery(model, cfg, ctx, subset, frames_per_track=None)
    assert np.allclose(g2, want, atol=1e-5)
    monkeypatch.undo()
    assert all(cache.is_complete(u, t) for u, t in tracks.items())
    assert {u: cache.path(u).stat().st_mtime_ns for u in tracks} == files
    # reduced decoding reads frames another way: it never fills the cache
    ctx2 = _ctx(mini, tmp_path / "cache2")
    fam.embed_gallery(model, load_config(CFG, {**tiny_overrides(), "embed": {"reduced_decode": True}}), ctx2, tracks)
    assert not any(CropCache(ctx2.cache_dir, cfg.data.crop_area, cfg.model.image_size).is_complete(u, t)
                   for u, t in tracks.items())


def test_gallery_embedding_cached_equals_decoded(mini: tuple[Path, Path], tmp_path: Path) -> None:
    fam = get_family("dual_stream")
    split = load_split(mini[1])
    cfg = load_config(CFG, tiny_overrides())
    nocache = load_config(CFG, {**tiny_overrides(), "data": {**DECODE, "cache_text": True}})
    ctx = _ctx(mini, tmp_path / "cache")
    fam.prepare(cfg, ctx, split["val"])
    torch.manual_seed(0)
    model = fam.build_model(cfg, num_classes=3).eval()
    tracks = {u: ctx.train_tracks[u] for u in split["val"]}
    for k in (None, 2):
        g1 = fam.embed_gallery(model, cfg, ctx, tracks, frames_per_track=k)
        g2 = fam.embed_gallery(model, nocache, ctx, tracks, frames_per_track=k)
        assert g1.shape == (len(tracks), 32)
        assert np.allclose(g1, g2, atol=1e-5)
    # the mean of per-frame merged embeddings (not re-normalised), each frame with its track's motion map
    u = split["val"][0]
    tr = tracks[u]
    crops = torch.stack([torch.from_numpy(np.array(fam_crop)) for fam_crop in
                         (ctx_crop(ctx, tr, i) for i in range(len(tr["frames"])))])
    from lib.families.images import load_motion

    mo = torch.from_numpy(load_motion(mini[1], "published", u, 32))[None].expand(len(crops), -1, -1, -1)
    with torch.no_grad():
        want = model.encode_images(crops, mo).mean(0).numpy()
    assert np.allclose(fam.embed_gallery(model, cfg, ctx, {u: tr}, frames_per_track=None)[0], want, atol=1e-5)
    q = fam.embed_queries(model, cfg, [["a red car", "a blue car"], ["x", "y"]])
    assert q.shape == (2, 2, 32) and np.allclose(np.linalg.norm(q, axis=-1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="different numbers of sentences"):
        fam.embed_queries(model, cfg, [["a"], ["b", "c"]])


def ctx_crop(ctx: TrainContext, tr: dict, i: int) -> np.ndarray:
    from lib.families.images import load_crop

    return load_crop(ctx.data_root.frame_path(tr["frames"][i]), tr["boxes"][i], 1.0, 32)


def test_text_encoder_resolution_pooling_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CFNL_MODELS_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match=r"roberta-large.*CFNL_MODELS_DIR"):
        resolve_text_encoder("roberta-large")
    pkg = resolve_text_encoder("all-MiniLM-L6-v2")
    monkeypatch.setenv("CFNL_MODELS_DIR", str(tmp_path))
    (tmp_path / "my-encoder").symlink_to(pkg)
    assert resolve_text_encoder("my-encoder") == pkg.resolve()
    s = ["A white van turns right.", "A very long sentence about a red pickup truck that stops at the light."]
    all_ = FrozenTextEncoder("all-MiniLM-L6-v2", "mean_all", 64)  # fixed-length padding (the option)
    tok = FrozenTextEncoder("all-MiniLM-L6-v2", "mean_tokens")
    fa, ft = all_.encode(s, use_memo=False), tok.encode(s, use_memo=False)
    assert fa.shape == ft.shape == (2, 384) and not torch.allclose(fa, ft, atol=1e-3)
    # padding is fixed: a sentence's feature does not depend on its batch-mates
    assert torch.allclose(all_.encode(s[:1], use_memo=False)[0], fa[0], atol=1e-5)
    # mean_tokens equals the sentence-transformers pooling of this model
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(pkg), device="cpu")
    ref = torch.from_numpy(st.encode(s, normalize_embeddings=False))
    assert torch.allclose(torch.nn.functional.normalize(ft, dim=-1), torch.nn.functional.normalize(ref, dim=-1),
                          atol=1e-4)
    cache = TextFeatureCache(all_, tmp_path / "cache")
    got = cache.get(s + s[:1])
    assert got.shape == (3, 384) and np.allclose(got[0], got[2]) and cache.path.exists()
    again = TextFeatureCache(FrozenTextEncoder("all-MiniLM-L6-v2", "mean_all", 64), tmp_path / "cache")
    assert len(again) == 2 and np.allclose(again.get(s), got[:2])
    assert "mean_all" in cache.path.name and "L64" in cache.path.name
    # published (no fixed length): the cache encodes each sentence alone, so there is no padding in its mean
    alone = FrozenTextEncoder("all-MiniLM-L6-v2", "mean_all")
    assert torch.allclose(alone.encode(s), ft, atol=1e-4) and "alone" in alone.key


# --- data.train_aug: training-time text augmentation and the left/right flip (off in the paper configs) ----------
def _aug_datasets(mini: tuple[Path, Path], tmp_path: Path, **data: object) -> tuple:
    fam = get_family("dual_stream")
    ids = load_split(mini[1])["train"]
    ctx = _ctx(mini, tmp_path / "cache")
    base = {**DECODE, "cache_text": False}
    off = fam.train_dataset(load_config(CFG, {**tiny_overrides(), "data": base}), ctx, ids)
    on = fam.train_dataset(load_config(CFG, {**tiny_overrides(), "data": {**base, **data}}), ctx, ids)
    return off, on, ids


def test_train_aug_off_changes_no_byte(mini: tuple[Path, Path], tmp_path: Path) -> None:
    assert load_config(CFG).data.train_aug == {}  # paper configuration: off
    off, empty, ids = _aug_datasets(mini, tmp_path, train_aug={})
    _, zeros, _ = _aug_datasets(mini, tmp_path, train_aug={"p_flip": 0.0, "p_synonym": 0.0})
    assert empty.augment is None and zeros.augment is None
    for seed in range(12):
        key = SampleKey(seed % len(ids), seed)
        x, y, z = off[key], empty[key], zeros[key]
        for a in (y, z):
            assert torch.equal(x["crop"], a["crop"]) and torch.equal(x["motion"], a["motion"])
            assert x["sentence"] == a["sentence"] and x["label"] == a["label"]


def test_train_aug_flip_mirrors_crop_and_motion_and_swaps_left_right(mini: tuple[Path, Path], tmp_path: Path
                                                                      ) -> None:
    from lib.text.train_aug import flip_sentence

    off, on, ids = _aug_datasets(mini, tmp_path, train_aug={"p_flip": 1.0})
    swapped = 0
    for seed in range(24):
        key = SampleKey(seed % len(ids), seed)
        x, y = off[key], on[key]
        assert off.choices(key) == on.choices(key)  # the sample's own draws are unchanged
        assert torch.equal(y["crop"], x["crop"].flip(1)) and torch.equal(y["motion"], x["motion"].flip(1))
        assert y["crop"].is_contiguous() and y["motion"].is_contiguous()
        assert y["sentence"] == flip_sentence(x["sentence"])
        if "left" in x["sentence"]:
            assert "right" in y["sentence"] and "left" not in y["sentence"]
            swapped += 1
    assert swapped > 0
    # determinism: the same key gives the same flipped sample
    a, b = on[SampleKey(2, 77)], on[SampleKey(2, 77)]
    assert torch.equal(a["crop"], b["crop"]) and a["sentence"] == b["sentence"]


def test_motion_rot90_turns_only_the_motion_map(mini: tuple[Path, Path], tmp_path: Path) -> None:
    """data.motion_rot90: the motion map turned by a quarter, half or three-quarter turn (a sample's own, repeatable
    draw); crop, sentence and label unchanged; 0 (every paper configuration) changes no byte; out of [0, 1] refused."""
    from lib.config import ConfigError

    assert load_config(CFG).data.motion_rot90 == 0.0
    off, on, ids = _aug_datasets(mini, tmp_path, motion_rot90=1.0)
    _, zero, _ = _aug_datasets(mini, tmp_path, motion_rot90=0.0)
    turns = set()
    for seed in range(24):
        key = SampleKey(seed % len(ids), seed)
        x, y, z = off[key], on[key], zero[key]
        assert torch.equal(x["motion"], z["motion"]) and zero.motion_turns(key) == 0
        k = on.motion_turns(key)
        assert k in (1, 2, 3) and k == on.motion_turns(key)
        turns.add(k)
        assert torch.equal(y["motion"], torch.rot90(x["motion"], k, dims=(0, 1))) and y["motion"].is_contiguous()
        assert torch.equal(y["crop"], x["crop"]) and y["sentence"] == x["sentence"] and y["label"] == x["label"]
    assert turns == {1, 2, 3}
    _, half, _ = _aug_datasets(mini, tmp_path, motion_rot90=0.5)
    n_turned = sum(half.motion_turns(SampleKey(0, s)) > 0 for s in range(400))
    assert 150 < n_turned < 250
    with pytest.raises(ConfigError, match="data.motion_rot90"):
        load_config(CFG, {"data": {"motion_rot90": 1.5}})


def test_train_aug_flip_with_cached_text_only_flips_left_right_free_samples(mini: tuple[Path, Path],
                                                                              tmp_path: Path) -> None:
    fam = get_family("dual_stream")
    ids = load_split(mini[1])["train"]
    ctx = _ctx(mini, tmp_path / "cache")
    off = fam.train_dataset(load_config(CFG, {**tiny_overrides(), "data": {**DECODE, "cache_text": True}}),
                            ctx, ids)
    on = fam.train_dataset(load_config(CFG, {**tiny_overrides(), "data": {**DECODE, "cache_text": True,
                                                                           "train_aug": {"p_flip": 1.0}}}), ctx, ids)
    kinds = set()
    for seed in range(24):
        key = SampleKey(seed % len(ids), seed)
        x, y = off[key], on[key]
        assert torch.equal(x["text"], y["text"])  # the cached feature of the unchanged sentence
        sentence = off.sentences[key.index][off.choices(key)[1]]
        flipped = "left" not in sentence and "right" not in sentence
        kinds.add(flipped)
        assert torch.equal(y["crop"], x["crop"].flip(1) if flipped else x["crop"])
    assert kinds == {True, False}


def test_train_aug_words_change_the_sentence_but_keep_colour_and_type(mini: tuple[Path, Path], tmp_path: Path
                                                                       ) -> None:
    from tests.helpers.track_dataset import COLOURS

    off, on, ids = _aug_datasets(mini, tmp_path, train_aug={"p_synonym": 1.0, "p_swap": 1.0})
    changed = 0
    for seed in range(24):
        key = SampleKey(seed % len(ids), seed)
        x, y = off[key], on[key]
        assert torch.equal(x["crop"], y["crop"]) and torch.equal(x["motion"], y["motion"])
        words = set(y["sentence"].lower().replace(".", " ").split())
        colour = next(c for c in COLOURS if c in x["sentence"].lower())
        assert colour in words and words & {"car", "sedan", "vehicle"}
        changed += y["sentence"] != x["sentence"]
        assert on[key]["sentence"] == y["sentence"]  # deterministic by key
    assert changed >= 12


def test_train_aug_config_errors_name_the_key() -> None:
    from lib.config import ConfigError

    with pytest.raises(ConfigError, match="data.train_aug.*'p_flipp'"):
        load_config(CFG, {"data": {"train_aug": {"p_flipp": 0.5}}})
    with pytest.raises(ConfigError, match="cache_text: false"):  # cached features cannot follow augmented words
        load_config(CFG, {"data": {"train_aug": {"p_swap": 0.5}, "cache_text": True}})
    assert load_config(CFG, {"data": {"train_aug": {"p_swap": 0.5}, "cache_text": False}}).data.train_aug_cfg.p_swap


def test_query_features_from_the_group_cache_are_the_computed_ones(mini: tuple[Path, Path], tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """embed_queries with a cache_dir runs the frozen encoder once per query set (published rule: each query's
    sentences as one batch) and gives exactly the numbers of the uncached path, in this process and the next."""
    from lib.families.text_encoders import GroupFeatureCache

    fam = get_family("dual_stream")
    cfg = load_config(CFG, tiny_overrides())
    torch.manual_seed(0)
    model = fam.build_model(cfg, num_classes=3).eval()
    queries = [["A red sedan turns left.", "red car going left", "A red sedan turning left at the junction."],
               ["A white SUV goes straight.", "white jeep", "The white SUV is going straight down the road."]]
    want = fam.embed_queries(model, cfg, queries)
    got = fam.embed_queries(model, cfg, queries, cache_dir=tmp_path)
    assert np.array_equal(got, want)
    cache = GroupFeatureCache(model.text_encoder, tmp_path)
    assert cache.path(queries).is_file() and len(list(cache.folder.iterdir())) == 1
    # computed where the model is (the uncached path moves the encoder there too), and keyed by that device
    assert model.text_encoder.device == model.logit_scale.device and "_cpu_" in cache.path(queries).name

    def no_encoder(*a: object, **k: object) -> None:
        raise AssertionError("the frozen encoder ran although its features are cached")

    monkeypatch.setattr(FrozenTextEncoder, "encode_batch", no_encoder)
    assert np.array_equal(fam.embed_queries(model, cfg, queries, cache_dir=tmp_path), want)
    monkeypatch.undo()
    # another query set is another file; a file whose groups differ from the request is not used
    other = [queries[1], queries[0]]
    assert np.array_equal(fam.embed_queries(model, cfg, other, cache_dir=tmp_path), want[::-1])
    assert len(list(cache.folder.iterdir())) == 2
    cache.path(other).replace(cache.path(queries))  # the right name, the wrong content
    assert np.array_equal(fam.embed_queries(model, cfg, queries, cache_dir=tmp_path), want)
