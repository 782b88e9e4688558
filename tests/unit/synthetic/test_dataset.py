"""The synthetic CityFlow-NL generator: layout and formats of the real data, determinism, decodable videos whose
boxes cover visible vehicles, the difficulty property, true context clauses, test-only wording, controlled
datasets and atomic output."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

import lib.synthetic.dataset as gen_mod
from lib.cityflow import FRAME_PATH_RE, camera_of, frame_index, validate_dataset
from lib.paths import ROOT
from lib.synthetic import (
    COLOURS,
    TYPES,
    TrackSpec,
    camera_background,
    difficulty,
    ensure_dataset,
    generate,
    resolve,
)
from lib.synthetic.__main__ import main as cli_main
from lib.synthetic.plan import plan_specs
from lib.synthetic.scene import make_layout, make_routes
from lib.synthetic.traffic import relations, simulate
from lib.synthetic.vocab import VERB_PHRASES
from lib.synthetic.world import build_camera, rng_for

JSON_FILES = ("train-tracks.json", "test-tracks.json", "test-queries.json", "test-gt.json", "synthetic-labels.json",
              "dataset.json")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m lib.synthetic --preset tiny --seed 3 --out A`` (through the CLI's main)."""
    out = tmp_path_factory.mktemp("syn") / "A"
    assert cli_main(["--preset", "tiny", "--seed", "3", "--out", str(out), "--quiet"]) == 0
    return out


def _load(root: Path, name: str) -> dict:
    return json.loads((root / name).read_text())


def _read_frame(root: Path, rel: str) -> np.ndarray:
    cap = cv2.VideoCapture(str(root / camera_of(rel) / "vdo.avi"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, frame_index(rel) - 1)
    ok, img = cap.read()
    cap.release()
    assert ok, rel
    return img


def test_layout_and_formats(tiny: Path) -> None:
    for name in JSON_FILES:
        assert (tiny / name).is_file(), name
    train, test = _load(tiny, "train-tracks.json"), _load(tiny, "test-tracks.json")
    queries, gt = _load(tiny, "test-queries.json"), _load(tiny, "test-gt.json")
    info = _load(tiny, "dataset.json")
    assert len(train) == 60 and len(test) == 24 and len(queries) == 24
    assert info["preset"] == "tiny" and info["seed"] == 3 and info["resolution"] == [320, 180]
    for tr in train.values():
        assert set(tr) == {"frames", "boxes", "nl"} and len(tr["nl"]) == 3 and len(set(tr["nl"])) == 3
    for tr in test.values():
        assert set(tr) == {"frames", "boxes"}
    for tr in [*train.values(), *test.values()]:
        assert len(tr["frames"]) == len(tr["boxes"]) >= 1
        assert all(FRAME_PATH_RE.match(f) for f in tr["frames"])
        idx = [frame_index(f) for f in tr["frames"]]
        assert idx[0] >= 1 and idx == list(range(idx[0], idx[0] + len(idx)))
        assert len({camera_of(f) for f in tr["frames"]}) == 1
    # test tracks come from the validation folder (unseen scenario) and from a camera shared with training
    test_folders = {camera_of(t["frames"][0]).split("/")[0] for t in test.values()}
    assert test_folders == {"validation", "train"}
    assert not any(camera_of(t["frames"][0]).startswith("validation") for t in train.values())
    assert set(gt) == set(queries) and set(gt.values()) == set(test)
    assert not set(queries) & (set(train) | set(test))  # query ids differ from track ids
    for q in queries.values():
        assert len(q) == 3 and all(isinstance(s, str) and s for s in q)
    assert validate_dataset(tiny, check_frames=True).ok


def test_same_seed_gives_identical_json_and_frames(tiny: Path, tmp_path: Path) -> None:
    other = tmp_path / "B"
    generate("tiny", 3, other, progress=False, workers=1)  # another process layout: must not matter
    for name in JSON_FILES:
        assert (tiny / name).read_bytes() == (other / name).read_bytes(), name
    for video in sorted(tiny.glob("*/S*/c*/vdo.avi")):
        a, b = cv2.VideoCapture(str(video)), cv2.VideoCapture(str(other / video.relative_to(tiny)))
        n = int(a.get(cv2.CAP_PROP_FRAME_COUNT))
        assert n == int(b.get(cv2.CAP_PROP_FRAME_COUNT)) > 0
        for k in range(0, n, max(1, n // 15)):
            a.set(cv2.CAP_PROP_POS_FRAMES, k)
            b.set(cv2.CAP_PROP_POS_FRAMES, k)
            ok_a, fa = a.read()
            ok_b, fb = b.read()
            assert ok_a and ok_b and np.array_equal(fa, fb), (video, k)


def test_other_seed_gives_other_world() -> None:
    s = resolve("tiny")
    a, b = build_camera(s, 0, 0), build_camera(s, 1, 0)
    assert not np.allclose(a.cam.pos, b.cam.pos)
    assert not np.array_equal(a.background()[0], b.background()[0])


def test_videos_decode_at_resolution_and_cover_all_frames(tiny: Path) -> None:
    info = _load(tiny, "dataset.json")
    for rel, cam in info["cameras"].items():
        cap = cv2.VideoCapture(str(tiny / rel / "vdo.avi"))
        assert cap.isOpened(), rel
        assert int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 320 and int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == 180
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == cam["n_frames"]
        n = 0
        while cap.read()[0]:
            n += 1
        assert n == cam["n_frames"], rel


def test_boxes_inside_frame_and_cover_a_visible_vehicle(tiny: Path) -> None:
    tracks = {**_load(tiny, "train-tracks.json"), **_load(tiny, "test-tracks.json")}
    backgrounds: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(0)
    for tr in tracks.values():
        for x, y, w, h in tr["boxes"]:
            assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= 320 and y + h <= 180
    uids = sorted(tracks)
    for uid in rng.choice(uids, size=30, replace=False):
        tr = tracks[uid]
        k = int(rng.integers(len(tr["frames"])))
        rel = tr["frames"][k]
        cam = camera_of(rel)
        if cam not in backgrounds:
            backgrounds[cam] = camera_background(tiny, cam)
        x, y, w, h = tr["boxes"][k]
        frame = _read_frame(tiny, rel)
        diff = np.abs(frame[y:y + h, x:x + w].astype(np.int16) - backgrounds[cam][y:y + h, x:x + w]).max(axis=2)
        changed = float((diff > 30).mean())
        assert changed > 0.3, (uid, rel, changed)  # the vehicle fills a good part of its box


def test_frame_numbering_matches_video(tmp_path: Path) -> None:
    """One vehicle alone: the box of ``img1/%06d.jpg`` k fits the vehicle in video frame k, not its neighbours."""
    spec = TrackSpec("S02/c006", "sedan", "red", "straight", "train")
    out = tmp_path / "one"
    generate("tiny", 5, out, specs=[spec], progress=False, traffic_share=0.0, workers=1, track_len_median=60.0)
    tr = next(iter(_load(out, "train-tracks.json").values()))
    bg = camera_background(out, camera_of(tr["frames"][0]))
    cap = cv2.VideoCapture(str(out / camera_of(tr["frames"][0]) / "vdo.avi"))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)

    def iou(k: int, video_k: int) -> float:
        if not 0 <= video_k < len(frames):
            return 0.0
        mask = np.abs(frames[video_k].astype(np.int16) - bg).max(axis=2) > 40
        x, y, w, h = tr["boxes"][k]
        inside = mask[y:y + h, x:x + w].sum()
        return inside / (mask.sum() + w * h - inside + 1e-9)

    for k in range(0, len(tr["frames"]), 4):
        n = frame_index(tr["frames"][k])  # 1-based
        scores = {off: iou(k, n - 1 + off) for off in (-2, -1, 0, 1, 2)}
        assert max(scores, key=scores.get) == 0, scores


def test_difficulty_property(tiny: Path) -> None:
    labels = _load(tiny, "synthetic-labels.json")
    d = difficulty(labels)
    assert d["satisfied"] and d["n"] == 24
    assert _load(tiny, "dataset.json")["difficulty"] == d


@pytest.mark.parametrize("n_test", [9, 10, 23, 530])
def test_difficulty_blocks_for_any_size(n_test: int) -> None:
    s = resolve("tiny")
    scenes = [build_camera(s, 0, i) for i in range(len(s.cameras()))]
    specs = plan_specs(scenes, 0, n_test, 0.75, rng_for(0, 4))
    labels = {str(i): {"split": sp.split, "type": sp.type, "colour": sp.colour, "manoeuvre": sp.manoeuvre}
              for i, sp in enumerate(specs)}
    d = difficulty(labels)
    assert d["n"] == n_test and d["satisfied"], d
    by_name = {sc.name: sc for sc in scenes}
    for sp in specs:  # each spec is renderable on its camera
        assert sp.manoeuvre in by_name[sp.camera].manoeuvres_for(sp.type)


def test_labels_truth_and_sentences(tiny: Path) -> None:
    labels = _load(tiny, "synthetic-labels.json")
    train, queries = _load(tiny, "train-tracks.json"), _load(tiny, "test-queries.json")
    info = _load(tiny, "dataset.json")
    layouts = {c["camera"]: c["layout"] for c in info["cameras"].values()}
    assert len(labels) == 84
    assert len({v["type"] for v in labels.values()}) >= 5
    for uid, lab in labels.items():
        assert lab["type"] in TYPES and lab["colour"] in COLOURS
        sents = train[uid]["nl"] if lab["split"] == "train" else queries[lab["query"]]
        for text, meta in zip(sents, lab["sentences"]):
            low = text.lower()
            said = COLOURS[lab["colour"]].near if meta["noise"] == "colour" else lab["colour"]
            if meta["noise"] is None:  # the colour and type are named (words of the truth, or their synonyms)
                assert any(re.search(rf"\b{re.escape(w.lower())}\b", low) for w in
                           COLOURS[said].words + COLOURS[said].test_only_words), (text, said)
                assert any(w.lower() in low for w in TYPES[lab["type"]].words + TYPES[lab["type"]].test_only_words), \
                    (text, lab["type"])
            # context clauses only when true in the render
            if "intersection" in low:
                assert lab["context"]["junction"] and layouts[lab["camera"]] != "road", text
            if "crosswalk" in low:
                assert lab["context"]["crosswalk"], text
            if "followed by" in low:
                other = lab["context"]["followed_by"]
                assert other is not None, text
                tail = low.split("followed by", 1)[1]
                assert any(w.lower() in tail for w in COLOURS[other["colour"]].words), (text, other)
            if re.search(r"\b(following|behind) (a|an|another)\b", low):
                other = lab["context"]["following"]
                assert other is not None, text
                tail = re.split(r"\b(?:following|behind) ", low, maxsplit=1)[1]
                assert any(w.lower() in tail for w in TYPES[other["type"]].words) or "vehicle" in tail, (text, other)
            if lab["manoeuvre"] in ("left", "right") and meta["noise"] is None:
                assert lab["manoeuvre"] in low, text


def test_test_only_wording_never_in_training(tiny: Path) -> None:
    train, queries = _load(tiny, "train-tracks.json"), _load(tiny, "test-queries.json")
    special = [p.present for ps in VERB_PHRASES.values() for p in ps if p.test_only]
    special += [w for t in TYPES.values() for w in t.test_only_words]
    special += [w for c in COLOURS.values() for w in c.test_only_words]
    special = [w.split("{")[0].strip().lower() for w in special]
    train_text = " ".join(s.lower() for t in train.values() for s in t["nl"])
    for w in special:
        assert not re.search(rf"\b{re.escape(w)}\b", train_text), w
    query_text = " ".join(s.lower() for q in queries.values() for s in q)
    assert any(re.search(rf"\b{re.escape(w)}\b", query_text) for w in special)


def test_relations_follow_geometry() -> None:
    layout = make_layout("road", np.random.default_rng(0))
    route = next(r for r in make_routes(layout) if r.manoeuvre == "straight" and r.lane_in == 1)
    other_lane = next(r for r in make_routes(layout) if r.manoeuvre == "straight" and r.lane_in == 0
                      and r.entry == route.entry)
    lead, follow = simulate(route, "sedan", 10.0), simulate(route, "bus", 10.0)
    lead.t0, follow.t0 = 0, 12  # 1.2 s behind at 10 m/s: about 12 m centre to centre
    side = simulate(other_lane, "van", 10.0)
    side.t0 = 0
    frames = np.arange(20, 60)
    assert relations(follow, [lead, follow, side], frames)["following"] == 0
    assert relations(lead, [lead, follow, side], frames)["followed_by"] == 1
    assert relations(lead, [lead, follow, side], frames)["next_to"] == 2
    far = simulate(route, "sedan", 10.0)
    far.t0 = 200
    assert relations(far, [lead, far], np.arange(200, 240)) == {"following": None, "followed_by": None,
                                                                "next_to": None}


def test_controlled_dataset(tmp_path: Path) -> None:
    specs = [TrackSpec("S03/c010", "bus", "yellow", "straight", "train", ("My own sentence.",)),
             TrackSpec("S02/c006", "pickup", "maroon", "left", "test"),
             TrackSpec("S02/c006", "pickup", "red", "left", "test", ("Given query one.", "Given query two."))]
    out = tmp_path / "ctl"
    rep = generate("tiny", 1, out, specs=specs, progress=False, traffic_share=0.0, workers=1)
    assert rep["counts"]["train_tracks"] == 1 and rep["counts"]["test_tracks"] == 2
    labels = _load(out, "synthetic-labels.json")
    got = sorted((v["camera"], v["type"], v["colour"], v["manoeuvre"], v["split"]) for v in labels.values())
    assert got == sorted((s.camera, s.type, s.colour, s.manoeuvre, s.split) for s in specs)
    assert [t["nl"] for t in _load(out, "train-tracks.json").values()] == [["My own sentence."]]
    assert ["Given query one.", "Given query two."] in _load(out, "test-queries.json").values()
    assert _load(out, "dataset.json")["controlled"] is True


def test_lane_changes_on_a_road_without_junction(tmp_path: Path) -> None:
    scen = [{"scenario": "S04", "kind": "road", "cameras": ["c016"], "folder": "train", "role": "mixed"}]
    specs = [TrackSpec("S04/c016", "sedan", "blue", m, "train") for m in ("lane_change", "stop", "straight")]
    out = tmp_path / "road"
    generate("tiny", 2, out, specs=specs, progress=False, scenarios=scen, workers=1)
    labels = _load(out, "synthetic-labels.json")
    train = _load(out, "train-tracks.json")
    for uid, lab in labels.items():
        assert lab["context"]["junction"] is False
        assert not any("intersection" in s.lower() for s in train[uid]["nl"])
        if lab["manoeuvre"] == "lane_change":
            assert lab["context"]["side"] in ("left", "right")
        if lab["manoeuvre"] == "stop":
            assert lab["stopped_frames"] >= 5 and lab["context"]["crosswalk"]


def test_bad_specs_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown camera 'S09/c999'"):
        generate("tiny", 0, tmp_path / "x", specs=[TrackSpec("S09/c999", "sedan", "red", "left")], progress=False)
    with pytest.raises(ValueError, match=r"track spec #1 .*colour 'plaid'"):
        generate("tiny", 0, tmp_path / "x", specs=[TrackSpec("S01/c001", "sedan", "red", "left"),
                                                   TrackSpec("S01/c001", "sedan", "plaid", "left")], progress=False)
    with pytest.raises(ValueError, match="lane_change"):
        generate("tiny", 0, tmp_path / "x", specs=[TrackSpec("S01/c001", "sedan", "red", "lane_change")],
                 progress=False)
    with pytest.raises(ValueError, match="unknown generator setting"):
        generate("tiny", 0, tmp_path / "x", n_trains=3)
    assert not (tmp_path / "x").exists()


def test_nothing_half_written_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*a, **k):
        raise RuntimeError("render failed")

    monkeypatch.setattr(gen_mod, "_run_jobs", boom)
    with pytest.raises(RuntimeError, match="render failed"):
        generate("tiny", 0, tmp_path / "out", progress=False, n_train=3, n_test=0)
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_protected_and_reused(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(FileExistsError, match="already exists"):
        generate("tiny", 3, tiny, progress=False)
    rep = ensure_dataset("tiny", 3, tiny, progress=False)
    assert rep["reused"] is True and rep["counts"]["train_tracks"] == 60


def test_an_edited_preset_is_not_reused(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from lib.synthetic import presets

    assert gen_mod.dataset_matches(tiny, "tiny", 3)
    monkeypatch.setitem(presets.PRESETS, "tiny", dataclasses.replace(presets.PRESETS["tiny"], n_test=25))
    assert not gen_mod.dataset_matches(tiny, "tiny", 3)  # same name and seed, other settings: stale


def test_mjpeg_avi_writer_roundtrip(tmp_path: Path) -> None:
    from lib.synthetic.avi import MjpegAviWriter

    rng = np.random.default_rng(0)
    frames = [cv2.GaussianBlur(rng.integers(0, 255, (36, 64, 3), dtype=np.uint8), (5, 5), 0) for _ in range(7)]
    path = tmp_path / "v.avi"
    with MjpegAviWriter(path, 64, 36, 10.0, quality=95) as wr:
        for f in frames:
            wr.write(f)
        with pytest.raises(ValueError, match="frame 32x36"):
            wr.write(np.zeros((36, 32, 3), np.uint8))
    cap = cv2.VideoCapture(str(path))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 7 and cap.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0)
    cap.set(cv2.CAP_PROP_POS_FRAMES, 4)
    ok, img = cap.read()
    assert ok and img.shape == (36, 64, 3)
    assert np.abs(img.astype(int) - frames[4]).mean() < np.abs(img.astype(int) - frames[3]).mean()
    assert np.abs(img.astype(int) - frames[4]).mean() < 4.0
    data = path.read_bytes()
    assert data[:4] == b"RIFF" and int.from_bytes(data[4:8], "little") == len(data) - 8
    first = data.index(b"00dc") + 8  # every packet is a complete JPEG
    assert data[first:first + 2] == b"\xff\xd8" and b"idx1" in data


def test_prepare_data_root_reuses_or_validates(tiny: Path) -> None:
    from lib.synthetic import prepare_data_root

    rep = prepare_data_root(tiny, preset="tiny", seed=3, progress=False)
    assert rep["generation"]["reused"] is True and rep["validation"].ok
    rep = prepare_data_root(tiny, real_data=True)  # as a real folder: validated only
    assert rep["generation"] is None and rep["validation"].counts["test_tracks"] == 24


def test_prepare_data_root_decodes_a_new_dataset_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dataset generated by prepare_data_root was validated, frames counted, before it was placed: that report is
    returned (for the placed folder) instead of decoding every video a second time; it equals a fresh validation."""
    import lib.cityflow as cityflow
    from lib.synthetic import prepare_data_root

    calls: list[Path] = []
    real = cityflow.validate_dataset

    def counting(root, *a, **k):
        calls.append(Path(root))
        return real(root, *a, **k)

    monkeypatch.setattr(cityflow, "validate_dataset", counting)
    out = tmp_path / "data"
    rep = prepare_data_root(out, preset="tiny", seed=5, progress=False, n_train=4, n_test=3)
    assert rep["generation"]["reused"] is False and len(calls) == 1 and calls[0] != out.resolve()
    assert rep["validation"].root == out.resolve()
    assert rep["validation"].to_json() == real(out, check_frames=True).to_json()
    prepare_data_root(out, preset="tiny", seed=5, progress=False, n_train=4, n_test=3)  # reused: validated
    assert len(calls) == 2 and calls[1] == out.resolve()


def test_dataset_card_tables(tiny: Path) -> None:
    from lib.data import card

    tracks = card.track_table(tiny)
    assert len(tracks) == 84 and set(tracks["source"]) == {"labels"}
    counts = card.counts_table(tiny, tracks)
    assert counts.loc["total", "train"] == 60 and counts.loc["total", "test"] == 24
    assert (counts.drop(index="total")["frames"] > 0).all()
    assert counts["frames"].dtype.kind == "i" and not counts.isna().any().any()  # no 1234.0 or NaN on show
    hist = card.histograms(tracks)
    assert set(hist) == {"colour", "type", "manoeuvre"}
    assert all(abs(h["ours"].sum() - 1.0) < 1e-9 for h in hist.values())
    stats = card.summary(tracks)["ours"]
    assert stats["tracks"] == 84 and stats["box_h_median_1080"] > 0
    examples = card.example_sentences(tiny, n=2)
    assert [e["split"] for e in examples] == ["train", "train", "query", "query"]
    assert all(e["truth"] is not None and len(e["sentences"]) == 3 for e in examples)
    tr = json.loads((tiny / "train-tracks.json").read_text())
    rel = next(iter(tr.values()))["frames"][0]
    from lib.frame_io import read_frame
    assert read_frame(tiny, rel, color="bgr").shape == (180, 320, 3)


REAL = ROOT.parent / "shared" / "data" / "cityflow_nl_annotations"


@pytest.mark.skipif(not (REAL / "test-queries.json").exists(), reason="real CityFlow-NL annotations not available")
def test_dataset_card_reads_real_annotations() -> None:
    from lib.data import card

    real = card.real_track_table(REAL)
    assert real is not None
    queries = real[real["split"] == "query"]
    assert len(queries) == 530 and queries["type"].notna().mean() > 0.8 and queries["colour"].notna().mean() > 0.8
    assert (real[real["split"] == "test"]["n_frames"] >= 1).all()


def test_ensure_dataset_never_replaces_a_foreign_folder(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "train-tracks.json").write_text("{}")
    with pytest.raises(FileExistsError, match="refusing to replace"):
        ensure_dataset("tiny", 0, real, progress=False)
    assert (real / "train-tracks.json").read_text() == "{}"


def test_partials_of_killed_runs_are_cleaned(tmp_path: Path) -> None:
    stale = tmp_path / ".out.partial-999999999"  # no such process
    (stale / "train").mkdir(parents=True)
    generate("tiny", 0, tmp_path / "out", specs=[TrackSpec("S02/c006", "van", "white", "right", "test")],
             progress=False, traffic_share=0.0, workers=1)
    assert not stale.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
