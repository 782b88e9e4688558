"""Real releases: the 2021 shape and the 2022 CityFlow-NL shape (``./`` frame paths, ``nl_other_views``, test queries
as objects, test tracks without sentences) both validate and run through frames, motion maps and text preparation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lib.cityflow import load_queries, query_sentences, validate_dataset
from lib.errors import InputError
from tests.helpers.camera_dataset import make_mini_dataset


def to_2022_shape(root: Path) -> None:
    """Rewrite a 2021-shaped mini dataset in place into the 2022 release's shape."""
    for name, has_nl in (("train-tracks.json", True), ("test-tracks.json", False)):
        tracks = json.loads((root / name).read_text())
        for t in tracks.values():
            t["frames"] = ["./" + f for f in t["frames"]]
            if has_nl:
                t["nl_other_views"] = ["A car seen from another camera.", "Another view of it."]
            else:
                t.pop("nl", None)
        (root / name).write_text(json.dumps(tracks))
    q = json.loads((root / "test-queries.json").read_text())
    (root / "test-queries.json").write_text(json.dumps(
        {k: {"nl": v, "nl_other_views": ["The same car from camera two."]} for k, v in q.items()}))


@pytest.fixture(scope="module")
def release_2022(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_mini_dataset(tmp_path_factory.mktemp("r22") / "data", n_frames=24, tracks_per_camera=2)
    to_2022_shape(root)
    return root


def test_2022_shape_validates_with_frames(release_2022: Path) -> None:
    report = validate_dataset(release_2022, check_frames=True)
    assert report.ok and report.counts["cameras"] == 3 and report.counts["cameras_with_size"] == 3


def test_both_query_shapes_load_to_the_same_sentences(release_2022: Path, tmp_path: Path) -> None:
    q22 = load_queries(release_2022 / "test-queries.json")
    raw = json.loads((release_2022 / "test-queries.json").read_text())
    (tmp_path / "q21.json").write_text(json.dumps({k: v["nl"] for k, v in raw.items()}))
    assert q22 == load_queries(tmp_path / "q21.json")
    with_views = load_queries(release_2022 / "test-queries.json", other_views=True)
    assert all(len(with_views[k]) == len(q22[k]) + 1 for k in q22)
    with pytest.raises(InputError, match="field 'nl'"):
        query_sentences({"text": []}, "q.json: query x")


def test_2022_shape_runs_frames_motion_and_text(release_2022: Path, tmp_path: Path) -> None:
    import shutil

    from lib.frames import extract_dataset
    from lib.motion.maps import build_motion_maps
    from lib.prep import motion_map_file
    from lib.text.augment import prepare_text

    root = tmp_path / "data"
    shutil.copytree(release_2022, root)
    fr = extract_dataset(root, workers=1, progress=False)
    assert not fr.problems
    mm = build_motion_maps(root, tmp_path / "prep" / "motion" / "published", workers=1, progress=False)
    assert not mm.problems
    for name in ("train-tracks.json", "test-tracks.json"):
        for uid in json.loads((root / name).read_text()):
            assert motion_map_file(tmp_path / "prep", "published", uid).exists()
    text = prepare_text(root, tmp_path / "prep")
    assert text["train"]["tracks"] > 0
    aug = load_queries(tmp_path / "prep" / "text" / "test-queries_nlpaug.json")
    assert all(len(v) == 4 for v in aug.values())  # 3 sentences + the joined chunks; other views not used
    train_aug = json.loads((tmp_path / "prep" / "text" / "train-tracks_nlpaug.json").read_text())
    assert all("nl_other_views" in t for t in train_aug.values())  # kept


def test_bad_other_views_are_named(release_2022: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "data"
    shutil.copytree(release_2022, root, ignore=shutil.ignore_patterns("*.avi"))
    q = json.loads((root / "test-queries.json").read_text())
    q["q0"]["nl_other_views"] = "not a list"
    (root / "test-queries.json").write_text(json.dumps(q))
    report = validate_dataset(root, raise_on_error=False)
    assert [(p.kind, p.file, p.track, p.field) for p in report.errors] == [
        ("bad_field", "test-queries.json", "q0", "nl_other_views")]
