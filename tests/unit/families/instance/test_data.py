"""Part Two data: "clear" instance ids, segment sampling, padded crops, transforms, text, the training dataset."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image

from lib.families.instance import data as D


def _tracks(nls: list[list[str]]) -> dict[str, dict]:
    return {f"t{i}": {"nl": nl, "frames": ["f.jpg"], "boxes": [[0, 0, 1, 1]]} for i, nl in enumerate(nls)}


def test_clear_merges_tracks_whose_sentences_all_first_appeared_in_one_earlier_track() -> None:
    tracks = _tracks([
        ["A red car.", "A red SUV.", "A red truck."],          # 0
        ["a red car.", "A RED SUV.", "a red truck."],          # 1: all three first seen in 0 (case-insensitive)
        ["A red car.", "A blue van.", "A red truck."],         # 2: one new sentence -> own id
        ["A blue van.", "A red car.", "A red truck."],         # 3: first seen in 2, 0, 0 -> different tracks, own id
        ["A blue van.", "A blue van.", "A blue van."],         # 4: all from 2 -> id 2
    ])
    c = D.clear_instance_ids(tracks, list(tracks), duplicate_unique_sentences=False)
    assert c.instance_ids == [0, 0, 2, 3, 2]
    assert c.num_classes == 5  # published: no re-indexing
    assert c.merged == 2
    r = D.clear_instance_ids(tracks, list(tracks), duplicate_unique_sentences=False, reindex=True)
    assert r.instance_ids == [0, 0, 1, 2, 1] and r.num_classes == 3


def test_clear_duplicates_sentences_unique_in_the_train_set() -> None:
    tracks = _tracks([["a", "b", "c"], ["A", "d", "e"]])
    c = D.clear_instance_ids(tracks, list(tracks), duplicate_unique_sentences=True)
    # "a"/"A" occurs twice (lower-cased) -> not duplicated; the others are unique -> appended once more
    assert c.sentences[0] == ["a", "b", "c", "b", "c"]
    assert c.sentences[1] == ["A", "d", "e", "d", "e"]


def test_clear_names_the_track_without_sentences() -> None:
    with pytest.raises(ValueError, match="track t1: field 'nl'"):
        D.clear_instance_ids({"t0": {"nl": ["x"]}, "t1": {"nl": []}}, ["t0", "t1"])


def test_segment_sampling_takes_one_frame_per_segment() -> None:
    rng = random.Random(0)
    for _ in range(200):
        idx = D.segment_frame_indices(10, 3, rng)  # L = 3: [0,3), [3,6), [6,9)
        assert 0 <= idx[0] < 3 and 3 <= idx[1] < 6 and 6 <= idx[2] < 9
    seen = {D.segment_frame_indices(7, 1, rng)[0] for _ in range(300)}
    assert seen == set(range(7))  # nseg = 1: any frame of the track
    assert D.segment_frame_indices(2, 3, rng) == [0, 0, 0]  # fewer frames than segments: frame 0 each (P2.9)


def test_eval_frames_are_the_published_linspace() -> None:
    assert D.eval_frame_indices(10, 4) == [0, 2, 5, 7]
    assert D.eval_frame_indices(3, 4) == [0, 1, 2]
    assert D.eval_frame_indices(4, 4) == [0, 1, 2, 3]
    assert D.eval_frame_indices(2, 3, all_if_short=False) == [0, 0, 1]


def test_text_normalisation_and_wrapping() -> None:
    s = "A Sedan  and a suv, a Suv and a Jeep."
    assert D.normalise_text(s) == "A sedan and a SUV, a SUV and a jeep."
    assert D.prepare_sentence("A Sedan.") == "[CLS]A sedan.[SEP]"
    assert D.prepare_sentence("A Sedan.", wrap="none") == "A sedan."
    with pytest.raises(ValueError, match="text_wrap"):
        D.wrap_text("x", "bogus")  # type: ignore[arg-type]


def test_crop_margin_is_relative_to_the_frame_and_resized_square() -> None:
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[40:60, 90:110] = 255  # the box
    img = D.crop_frame(frame, [90, 40, 20, 20], pad=0.0, crop_size=32)
    assert img.size == (32, 32) and np.asarray(img).min() > 200
    padded = D.crop_frame(frame, [90, 40, 20, 20], pad=0.1, crop_size=64)  # margin 20 px x, 10 px y
    arr = np.asarray(padded)
    assert arr[0, 0].max() == 0 and arr[32, 32].min() > 200


def test_train_transform_shape_range_and_erasing() -> None:
    img = Image.fromarray(np.full((32, 32, 3), 255, np.uint8))
    t = D.train_transform(img, 32, random.Random(1), erasing_p=0.0)
    assert t.shape == (3, 32, 32)
    assert torch.isclose(t.max(), torch.tensor(1.0)) and torch.isclose(t.min(), torch.tensor(-1.0))  # zero pad
    erased = 0
    for seed in range(40):
        t = D.train_transform(img, 32, random.Random(seed), pad_pixels=0, erasing_p=0.5)
        hit = torch.isclose(t[0], torch.tensor(D.ERASING_FILL[0]))
        if hit.any():
            erased += 1
            assert torch.isclose(t[1][hit], torch.tensor(D.ERASING_FILL[1])).all()
    assert 8 <= erased <= 32  # about half


@pytest.fixture()
def frames_root(tmp_path):
    rng = np.random.default_rng(0)
    tracks = {}
    for t in range(3):
        frames, boxes = [], []
        for f in range(6):
            rel = f"train/S01/c00{t}/img1/{f + 1:06d}.jpg"
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(tmp_path / rel)
            frames.append(rel)
            boxes.append([10 + f, 10, 30, 20])
        tracks[f"uuid{t}"] = {"frames": frames, "boxes": boxes,
                              "nl": [f"A Sedan number {t}.", f"car {t}", f"vehicle {t}"]}
    return tmp_path, tracks


def test_dataset_items_are_reproducible_from_their_key(frames_root) -> None:
    root, tracks = frames_root
    clear = D.clear_instance_ids(tracks, list(tracks))
    opts = D.InstanceDataOptions(crop_size=24, nseg=3, pad=0.2, multi=10)
    ds = D.InstanceTrainDataset(root, tracks, clear, opts)
    assert len(ds) == 30 and ds.model_kwargs == {"num_classes": 3}
    a, b = ds[(4, 123)], ds[(4, 123)]
    assert torch.equal(a["images"], b["images"]) and a["text"] == b["text"]
    assert a["images"].shape == (3, 3, 24, 24)
    assert a["track"] == "uuid1" and a["label"] == 1  # index 4 -> track 4 % 3
    assert a["text"].startswith("[CLS]") and a["text"].endswith("[SEP]") and "Sedan" not in a["text"]
    texts = {ds[(1, s)]["text"] for s in range(60)}
    assert texts == {"[CLS]A sedan number 1.[SEP]", "[CLS]car 1[SEP]", "[CLS]vehicle 1[SEP]"}
    c = ds[(4, 124)]
    assert not torch.equal(a["images"], c["images"])
    batch = D.collate([a, c])
    assert batch["images"].shape == (2, 3, 3, 24, 24) and batch["labels"].tolist() == [1, 1]


def test_dataset_names_a_missing_frame(frames_root) -> None:
    root, tracks = frames_root
    tracks["uuid0"]["frames"][0] = "train/S01/c000/img1/999999.jpg"
    tracks["uuid0"]["frames"] = tracks["uuid0"]["frames"][:1]
    tracks["uuid0"]["boxes"] = tracks["uuid0"]["boxes"][:1]
    clear = D.clear_instance_ids(tracks, ["uuid0"])
    ds = D.InstanceTrainDataset(root, tracks, clear, D.InstanceDataOptions(crop_size=16, nseg=1, pad=0.0))
    with pytest.raises(FileNotFoundError, match="999999.jpg"):
        ds[0]


# --- data.train_aug: training-time text augmentation and the left/right flip (off in the paper configs) ----------
def _lr_tracks(tracks: dict) -> dict:
    for t, tr in enumerate(tracks.values()):
        tr["nl"] = [f"A red Sedan turns left number {t}.", f"A blue SUV goes right {t}.", f"A car stops {t}."]
    return tracks


def _aug_ds(root, tracks, d: dict | None) -> D.InstanceTrainDataset:
    from lib.text.train_aug import train_aug_config

    clear = D.clear_instance_ids(tracks, list(tracks))
    opts = D.InstanceDataOptions(crop_size=24, nseg=3, pad=0.2, multi=2,
                                 train_aug=None if d is None else train_aug_config(d))
    return D.InstanceTrainDataset(root, tracks, clear, opts)


def test_train_aug_off_changes_no_byte(frames_root) -> None:
    root, tracks = frames_root
    tracks = _lr_tracks(tracks)
    plain, empty, zeros = (_aug_ds(root, tracks, d) for d in (None, {}, {"p_flip": 0.0, "p_swap": 0.0}))
    assert empty.augment is None and zeros.augment is None
    for seed in range(6):
        a, b, c = plain[(seed, seed + 50)], empty[(seed, seed + 50)], zeros[(seed, seed + 50)]
        assert torch.equal(a["images"], b["images"]) and torch.equal(a["images"], c["images"])
        assert a["text"] == b["text"] == c["text"] and a["label"] == b["label"]


def test_train_aug_flip_mirrors_every_segment_and_swaps_left_right(frames_root) -> None:
    from lib.text.train_aug import flip_sentence

    root, tracks = frames_root
    tracks = _lr_tracks(tracks)
    plain, flip = _aug_ds(root, tracks, None), _aug_ds(root, tracks, {"p_flip": 1.0})
    texts = set()
    for seed in range(12):
        a, b = plain[(seed % 6, seed)], flip[(seed % 6, seed)]
        assert b["images"].shape == (3, 3, 24, 24)
        assert torch.equal(b["images"], torch.flip(a["images"], dims=[-1]))  # all nseg crops mirrored
        assert b["text"] == flip_sentence(a["text"])
        texts.add(b["text"])
    assert any("turns right" in t for t in texts) and any("goes left" in t for t in texts)
    again = flip[(3, 3)]
    assert torch.equal(again["images"], flip[(3, 3)]["images"]) and again["text"] == flip[(3, 3)]["text"]


def test_train_aug_words_change_the_sentence_but_keep_colour_and_type(frames_root) -> None:
    root, tracks = frames_root
    tracks = _lr_tracks(tracks)
    plain, aug = _aug_ds(root, tracks, None), _aug_ds(root, tracks, {"p_synonym": 1.0, "p_swap": 1.0})
    changed = 0
    for seed in range(18):
        a, b = plain[(seed % 6, seed)], aug[(seed % 6, seed)]
        assert torch.equal(a["images"], b["images"])  # the image draws are unchanged
        assert b["text"].startswith("[CLS]") and b["text"].endswith("[SEP]")
        words = set(b["text"][5:-5].lower().replace(".", " ").split())
        # colour and type words are kept (a synonym may spell SUV out; swaps may move words)
        for w, alt in (("red", "red"), ("sedan", "sedan"), ("blue", "blue"), ("suv", "utility"), ("car", "car")):
            if w in a["text"].lower().split():
                assert w in words or alt in words, (a["text"], b["text"])
        changed += a["text"] != b["text"]
        assert aug[(seed % 6, seed)]["text"] == b["text"]  # deterministic by key
    assert changed >= 9


def test_train_aug_config_and_family_wiring(tmp_path) -> None:
    from lib.config import ConfigError
    from lib.families import load_config
    from lib.families.base import TrainContext, get_family
    from lib.prep import load_split
    from tests.helpers.instance_configs import small_cpu_overrides
    from tests.helpers.track_dataset import make_mini_dataset

    paper = "b48_lr1_w20_clip_e120_dd"
    assert load_config(paper).data.train_aug == {}
    with pytest.raises(ConfigError, match="data.train_aug.*'p_swapp'"):
        load_config(paper, {"data": {"train_aug": {"p_swapp": 0.5}}})
    with pytest.raises(ConfigError, match="p_flip must be a probability"):
        load_config(paper, {"data": {"train_aug": {"p_flip": 1.5}}})
    data, prep = make_mini_dataset(tmp_path, n_tracks=6, n_frames=3, n_val=2)
    ctx = TrainContext.create(data, prep, device="cpu", workers=0)
    ids = load_split(prep)["train"]
    fam = get_family("instance")
    over = small_cpu_overrides()
    fam.prepare(load_config(paper, over), ctx, ids)  # the paper configurations train on the crop store
    plain = fam.train_dataset(load_config(paper, over), ctx, ids)
    flip = fam.train_dataset(load_config(paper, {**over, "data": {"multi": 1, "train_aug": {"p_flip": 1.0}}}),
                             ctx, ids)
    assert plain.augment is None and flip.augment is not None
    a, b = plain[(0, 5)], flip[(0, 5)]
    assert torch.equal(b["images"], torch.flip(a["images"], dims=[-1]))
