"""Ids are data, not paths: the validator refuses ids unsafe as file names, and every writer that names a file
after an id goes through ``lib.io.path_in`` (a hostile id never leaves its folder)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from lib.cityflow import ValidationReport, validate_tracks
from lib.errors import InputError
from lib.io import path_in, safe_name

HOSTILE = ["../../escape", "a/b", "..", ".", "x\\y", "nul\x00byte", "tab\tid", ".hidden", "é ü", "%41"]


def _files(root: Path) -> set[Path]:
    return {p.resolve() for p in root.rglob("*") if p.is_file()}


def _inside(folder: Path, root: Path, before: set[Path] | None = None) -> None:
    """Every file under ``root`` (that was not there ``before``) lies under ``folder``."""
    for p in _files(root) - (before or set()):
        assert folder.resolve() in p.parents, f"{p} escaped {folder}"


def test_safe_name_keeps_clean_ids_and_is_injective() -> None:
    for clean in ("0a1b2c3d-0000-4000-8000-000000000000", "track-001", "motion_effb3_NOCLS_nlpaug_320", "a.b"):
        assert safe_name(clean) == clean
    names = [safe_name(h) for h in HOSTILE]
    assert len(set(names)) == len(names)
    for n in names:
        assert "/" not in n and "\\" not in n and n not in (".", "..") and not n.startswith(".")
        assert "\x00" not in n and all(ord(c) >= 32 for c in n)
    assert safe_name("%41") != safe_name("A")
    long = safe_name("x" * 1000)
    assert len(long) <= 200 and long != safe_name("x" * 999)
    with pytest.raises(InputError):
        safe_name("")


@pytest.mark.parametrize("hostile", HOSTILE)
def test_path_in_never_leaves_its_folder(tmp_path: Path, hostile: str) -> None:
    p = path_in(tmp_path / "out", hostile, ".jpg")
    assert p.parent == tmp_path / "out" and p.name.endswith(".jpg")


@pytest.mark.parametrize("bad", ["../../escape", "a/b", "..", "x\\y", "nul\x00byte", "tab\tid", "", " pad"])
def test_validator_rejects_unsafe_track_and_query_ids(bad: str) -> None:
    report = ValidationReport(Path("/data"))
    track = {"frames": ["train/S01/c001/img1/000001.jpg"], "boxes": [[1, 1, 5, 5]], "nl": ["a car."] * 3}
    validate_tracks({bad: track, "good-id": track}, "train-tracks.json", report, require_nl=True)
    kinds = [(p.kind, p.file, p.track) for p in report.errors]
    assert kinds == [("unsafe_id", "train-tracks.json", repr(bad))]
    assert "train-tracks.json" in str(report.errors[0]) and repr(bad) in str(report.errors[0])


def test_validate_dataset_names_the_queries_file_and_the_id(tiny_dataset: Path, tmp_path: Path) -> None:
    import shutil

    from lib.cityflow import DatasetError, validate_dataset

    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset, root, ignore=shutil.ignore_patterns("*.avi", "img1"))
    q = json.loads((root / "test-queries.json").read_text())
    first = next(iter(q))
    q["../../escape"] = q.pop(first)
    (root / "test-queries.json").write_text(json.dumps(q))
    (root / "test-gt.json").unlink(missing_ok=True)
    with pytest.raises(DatasetError) as e:
        validate_dataset(root)
    assert "test-queries.json" in e.value.one_line() and "'../../escape'" in e.value.one_line()


def _jpeg_camera(root: Path, cam: str, n: int = 8, w: int = 64, h: int = 48) -> list[str]:
    import cv2

    (root / cam / "img1").mkdir(parents=True)
    rels = []
    for k in range(1, n + 1):
        img = np.full((h, w, 3), 40 + 10 * k, np.uint8)
        cv2.imwrite(str(root / cam / "img1" / f"{k:06d}.jpg"), img)
        rels.append(f"{cam}/img1/{k:06d}.jpg")
    return rels


def test_motion_maps_of_a_hostile_id_stay_in_their_folder(tmp_path: Path) -> None:
    from lib.motion.maps import TrackJob, build_camera
    from lib.motion.reference import build_reference

    data = tmp_path / "data"
    rels = _jpeg_camera(data, "train/S01/c001")
    boxes = tuple((4.0, 4.0, 20.0, 16.0) for _ in rels)
    out = tmp_path / "prep" / "motion" / "published"
    before = _files(tmp_path)
    res = build_camera(data, "train/S01/c001", [TrackJob("../../escape", tuple(rels), boxes)], out)
    assert res.status == "built" and res.written == 1, res.error
    _inside(out, tmp_path, before)
    assert path_in(out, "../../escape", ".jpg").exists()
    # the literal reference implementation too
    (data / "train-tracks.json").write_text(json.dumps({"../../escape2": {"frames": rels, "boxes": [list(b) for b in
                                                                                                    boxes]}}))
    ref = tmp_path / "ref" / "out"
    build_reference(data, ref, splits=("train",))
    _inside(ref, tmp_path / "ref")
    assert path_in(ref, "../../escape2", ".jpg").exists()


def test_prep_motion_map_file_is_inside_its_variant_folder(tmp_path: Path) -> None:
    from lib.prep import motion_dir, motion_map_file

    assert motion_map_file(tmp_path, "published", "../../escape").parent == motion_dir(tmp_path, "published")


def test_training_caches_of_a_hostile_id_stay_in_their_folder(tmp_path: Path) -> None:
    from lib.cityflow import Layout
    from lib.families.dual_stream.cache import CropCache, MotionCache, build_caches

    data = tmp_path / "data"
    rels = _jpeg_camera(data, "train/S01/c001", n=3)
    track = {"frames": rels, "boxes": [[4, 4, 20, 16]] * 3}
    hostile = "../../escape"
    prep = tmp_path / "prep"
    import cv2

    mm = path_in(prep / "motion" / "published", hostile, ".jpg")
    mm.parent.mkdir(parents=True)
    cv2.imwrite(str(mm), np.full((48, 64, 3), 90, np.uint8))
    cache = tmp_path / "cache"
    caches = [CropCache(cache, 1.5, 16), MotionCache(cache, prep, "published", 16)]
    rec = build_caches(caches, Layout.of(data), {hostile: track}, progress=False, log=lambda s: None)
    assert rec["cache_files_built"] == 2
    _inside(cache, tmp_path / "cache")
    assert all(c.is_complete(hostile, track) for c in caches)
    assert not (tmp_path / "escape.npy").exists() and not (tmp_path.parent / "escape.npy").exists()


def test_release_configuration_names_cannot_leave_the_output_folder(tmp_path: Path) -> None:
    from lib.ensemble.release import convert_release

    src = tmp_path / "release"
    src.mkdir()
    img = {"t1": {0: np.ones(4, np.float32)}, "t2": {0: np.full(4, 2, np.float32)}}
    lang = {"q1": np.ones((3, 4), np.float32)}
    (src / "img_feat_...pkl").write_bytes(pickle.dumps(img))  # configuration name ".."
    (src / "lang_feat_...pkl").write_bytes(pickle.dumps(lang))
    out = tmp_path / "a" / "out"
    dirs = convert_release(src, out)
    assert len(dirs) == 1 and dirs[0].parent == out
    _inside(out, tmp_path / "a")
