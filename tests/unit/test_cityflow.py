"""lib.cityflow.validate_dataset: every kind of broken dataset gives an error or a counted warning that names the
file, the track and the field; a valid folder passes; the real annotations validate (skipped when absent)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from lib.cityflow import DatasetError, ValidationReport, validate_dataset
from lib.paths import ROOT

W, H = 160, 90
REAL = ROOT.parent / "shared" / "data" / "cityflow_nl_annotations"


def _frames(cam: str, start: int, n: int) -> list[str]:
    return [f"{cam}/img1/{k:06d}.jpg" for k in range(start, start + n)]


def _write(root: Path, name: str, obj: object) -> None:
    (root / name).write_text(json.dumps(obj))


def _video(path: Path, n: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H))
    assert wr.isOpened()
    for k in range(n):
        wr.write(np.full((H, W, 3), 10 * k % 255, np.uint8))
    wr.release()


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    """A valid two-camera dataset: 2 training tracks, 2 test tracks, 2 queries with ground truth, videos."""
    root = tmp_path / "data"
    root.mkdir()
    a, b = "train/S01/c001", "validation/S02/c006"
    _video(root / a / "vdo.avi", 12)
    _video(root / b / "vdo.avi", 12)
    train = {
        "t1": {"frames": _frames(a, 1, 3), "boxes": [[10, 10, 30, 20]] * 3, "nl": ["A red car.", "Red car.", "Car."]},
        "t2": {"frames": _frames(a, 5, 2), "boxes": [[0, 0, W, H]] * 2, "nl": ["A bus.", "Bus.", "A big bus."]},
    }
    test = {"x1": {"frames": _frames(b, 2, 4), "boxes": [[50, 20, 40, 30]] * 4},
            "x2": {"frames": _frames(a, 8, 2), "boxes": [[5, 5, 10, 10]] * 2}}
    _write(root, "train-tracks.json", train)
    _write(root, "test-tracks.json", test)
    _write(root, "test-queries.json", {"q1": ["A van.", "Van.", "White van."], "q2": ["A.", "B.", "C."]})
    _write(root, "test-gt.json", {"q1": "x1", "q2": "x2"})
    return root


def _edit(root: Path, name: str, fn) -> None:
    data = json.loads((root / name).read_text())
    fn(data)
    _write(root, name, data)


def _problems(root: Path, **kw) -> list:
    with pytest.raises(DatasetError) as ei:
        validate_dataset(root, **kw)
    return ei.value.problems


def test_valid_dataset_passes(dataset: Path) -> None:
    rep = validate_dataset(dataset, check_frames=True)
    assert isinstance(rep, ValidationReport) and rep.ok
    assert rep.n_warnings == 0, rep.summary()
    assert rep.counts["train_tracks"] == 2 and rep.counts["test_tracks"] == 2 and rep.counts["gt"] == 2
    assert rep.frame_sizes == {"train/S01/c001": (W, H), "validation/S02/c006": (W, H)}


def test_missing_json_file(dataset: Path) -> None:
    (dataset / "test-queries.json").unlink()
    probs = _problems(dataset)
    assert [(p.kind, p.file) for p in probs] == [("missing_file", "test-queries.json")]


def test_missing_folder(tmp_path: Path) -> None:
    probs = _problems(tmp_path / "nope")
    assert probs[0].kind == "missing_file"


def test_frames_boxes_length_mismatch(dataset: Path) -> None:
    _edit(dataset, "train-tracks.json", lambda d: d["t1"]["boxes"].pop())
    (p,) = _problems(dataset)
    assert (p.kind, p.file, p.track, p.field) == ("length_mismatch", "train-tracks.json", "t1", "boxes")
    assert "3 frames but 2 boxes" in p.message


def test_zero_area_box(dataset: Path) -> None:
    _edit(dataset, "test-tracks.json", lambda d: d["x1"]["boxes"].__setitem__(2, [50, 20, 0, 30]))
    (p,) = _problems(dataset)
    assert (p.kind, p.file, p.track, p.field) == ("zero_area_box", "test-tracks.json", "x1", "boxes")
    assert "#2" in p.message


def test_box_outside_frame_error_and_partly_outside_warning(dataset: Path) -> None:
    def edit(d: dict) -> None:
        d["x1"]["boxes"][0] = [W + 5, 10, 20, 20]  # entirely right of the frame
        d["x2"]["boxes"][1] = [W - 5, 10, 20, 20]  # sticks out on the right

    _edit(dataset, "test-tracks.json", edit)
    rep = validate_dataset(dataset, raise_on_error=False)
    assert [(p.kind, p.track) for p in rep.errors] == [("box_outside_frame", "x1")]
    assert f"{W}x{H}" in rep.errors[0].message
    assert rep.warning_counts["box_partly_outside"] == 1 and rep.warnings[0].track == "x2"


def test_negative_box_outside_without_known_frame_size(dataset: Path) -> None:
    for cam in ("train/S01/c001", "validation/S02/c006"):
        (dataset / cam / "vdo.avi").unlink()
    _edit(dataset, "train-tracks.json", lambda d: d["t1"]["boxes"].__setitem__(0, [-50, 10, 20, 20]))
    rep = validate_dataset(dataset, raise_on_error=False)
    assert [(p.kind, p.track) for p in rep.errors] == [("box_outside_frame", "t1")]
    assert rep.warning_counts["frame_size_unknown"] == 2  # inside-frame check skipped, and counted


def test_frame_size_from_extracted_frame(dataset: Path) -> None:
    cam = dataset / "train/S01/c001"
    (cam / "vdo.avi").unlink()
    (cam / "img1").mkdir()
    cv2.imwrite(str(cam / "img1" / "000001.jpg"), np.zeros((H, W, 3), np.uint8))
    rep = validate_dataset(dataset)
    assert rep.frame_sizes["train/S01/c001"] == (W, H)


def test_track_without_sentences(dataset: Path) -> None:
    def edit(d: dict) -> None:
        del d["t1"]["nl"]
        d["t2"]["nl"] = []

    _edit(dataset, "train-tracks.json", edit)
    probs = _problems(dataset)
    assert sorted((p.kind, p.track, p.field) for p in probs) == [("no_sentences", "t1", "nl"),
                                                                 ("no_sentences", "t2", "nl")]


def test_query_without_sentences_and_sentence_count_warning(dataset: Path) -> None:
    _edit(dataset, "test-queries.json", lambda d: d.update({"q1": [], "q2": ["Only one."]}))
    rep = validate_dataset(dataset, raise_on_error=False)
    assert [(p.kind, p.file, p.track) for p in rep.errors] == [("no_sentences", "test-queries.json", "q1")]
    assert rep.warning_counts == {"sentence_count": 1}


def test_query_without_ground_truth(dataset: Path) -> None:
    _write(dataset, "test-gt.json", {"q1": "x1"})
    (p,) = _problems(dataset)
    assert (p.kind, p.file, p.track) == ("query_without_gt", "test-gt.json", "q2")


def test_ground_truth_naming_unknown_track(dataset: Path) -> None:
    _write(dataset, "test-gt.json", {"q1": "x1", "q2": "nope"})
    (p,) = _problems(dataset)
    assert p.kind == "gt_unknown_track" and "nope" in p.message


def test_no_gt_file_is_fine(dataset: Path) -> None:
    (dataset / "test-gt.json").unlink()
    assert validate_dataset(dataset).counts["gt"] == 0


def test_bad_frame_path(dataset: Path) -> None:
    _edit(dataset, "train-tracks.json", lambda d: d["t1"]["frames"].__setitem__(1, "train/S01/c001/000002.jpg"))
    (p,) = _problems(dataset)
    assert (p.kind, p.track, p.field) == ("bad_frame_path", "t1", "frames") and "#1" in p.message


def test_malformed_box_and_missing_field(dataset: Path) -> None:
    def edit(d: dict) -> None:
        d["x1"]["boxes"][0] = [1, 2, 3]
        del d["x2"]["frames"]

    _edit(dataset, "test-tracks.json", edit)
    probs = _problems(dataset)
    assert sorted((p.kind, p.track, p.field) for p in probs) == [("bad_box", "x1", "boxes"),
                                                                 ("missing_field", "x2", "frames")]


def test_bad_json(dataset: Path) -> None:
    (dataset / "train-tracks.json").write_text("{not json")
    (p,) = _problems(dataset)
    assert p.kind == "bad_json" and p.file == "train-tracks.json"


def test_check_frames_missing_video_and_short_video(dataset: Path) -> None:
    (dataset / "validation/S02/c006/vdo.avi").unlink()
    _edit(dataset, "train-tracks.json", lambda d: d["t2"].update(frames=_frames("train/S01/c001", 12, 2)))
    assert validate_dataset(dataset).ok  # without check_frames: only a size warning for the camera
    probs = _problems(dataset, check_frames=True)
    kinds = sorted((p.kind, p.track) for p in probs)
    assert kinds == [("missing_file", "x1"), ("missing_frame", "t2")]
    short = next(p for p in probs if p.kind == "missing_frame")
    assert "000013" in short.message and "12 frames" in short.message


def test_error_message_lists_file_track_field(dataset: Path) -> None:
    _edit(dataset, "train-tracks.json", lambda d: d["t1"]["boxes"].pop())
    with pytest.raises(DatasetError) as ei:
        validate_dataset(dataset)
    msg = str(ei.value)
    assert "train-tracks.json: track t1: field 'boxes'" in msg and "length_mismatch" in msg


@pytest.mark.skipif(not (REAL / "val.json").exists(), reason="real CityFlow-NL annotations not available")
def test_real_annotations_validate() -> None:
    rep = validate_dataset(REAL, train_file="val.json", raise_on_error=False)
    assert rep.ok, rep.summary()
    assert rep.counts["test_tracks"] == 530 and rep.counts["queries"] == 530 and rep.counts["train_tracks"] == 100
    # no videos there: the inside-frame check is skipped per camera, and counted
    assert rep.warning_counts["frame_size_unknown"] == rep.counts["cameras"]


def test_with_other_views_appends_them_after_nl() -> None:
    from lib.cityflow import with_other_views

    tracks = {"a": {"nl": ["x"], "nl_other_views": ["y", "z"]}, "b": {"nl": ["w"]}}
    out = with_other_views(tracks)
    assert out["a"]["nl"] == ["x", "y", "z"] and out["b"] is tracks["b"]
    assert tracks["a"]["nl"] == ["x"]  # the input is not changed
