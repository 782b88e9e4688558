"""Motion maps: equal to the published rule computed the straightforward way, variants, resumability, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from lib.frames import extract_dataset
from lib.motion import maps as motion
from lib.motion.maps import (
    background_path,
    background_positions,
    background_stride,
    box_iou,
    build_motion_maps,
    motion_map_path,
    paste_positions,
)
from lib.motion.reference import build_reference, reference_background
from tests.helpers.camera_dataset import make_mini_dataset


def assert_same_image(a_path: Path, b_path: Path) -> None:
    """Pixel comparison with a JPEG tolerance only."""
    a = cv2.imread(str(a_path)).astype(int)
    b = cv2.imread(str(b_path)).astype(int)
    assert a.shape == b.shape, (a_path, b_path)
    diff = np.abs(a - b)
    assert diff.mean() < 0.5 and diff.max() <= 12, (a_path.name, diff.mean(), diff.max())


def compare_with_reference(data: Path, ours: Path, ref: Path) -> int:
    tracks = {**json.loads((data / "train-tracks.json").read_text()), **json.loads((data / "test-tracks.json")
                                                                                  .read_text())}
    for uuid in tracks:
        assert_same_image(ours / f"{uuid}.jpg", ref / f"{uuid}.jpg")
    for bg in (ref / "backgrounds").glob("*.jpg"):
        assert_same_image(ours / "backgrounds" / bg.name, bg)
    return len(tracks)


@pytest.fixture()
def mini(tmp_path: Path) -> Path:
    data = make_mini_dataset(tmp_path / "data", n_frames=40, black_vehicle=True)
    extract_dataset(data, workers=1, progress=False)
    return data


def test_rule_constants() -> None:
    assert [background_stride(n) for n in (1, 199, 399, 400, 1000, 5000)] == [1, 1, 1, 2, 5, 5]
    assert background_positions(10) == list(range(10))
    assert background_positions(450) == list(range(0, 450, 2))
    assert len(background_positions(100_000)) == 1000 and background_positions(100_000)[:3] == [0, 5, 10]
    boxes = [[0, 0, 10, 10]] * 16
    assert paste_positions(boxes) == [1, 8, 15]  # i % 7 == 1, i the 0-based position in the track
    assert paste_positions(boxes[:1]) == []
    assert motion_map_path("P", "iou", "u") == Path("P/motion/iou/u.jpg")
    assert box_iou([0, 0, 10, 10], [5, 0, 10, 10]) == pytest.approx(50 / 150)


def test_compose_equals_canvas_then_fill() -> None:
    rng = np.random.default_rng(0)
    bg = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    for _ in range(20):
        patches = []
        for _ in range(int(rng.integers(0, 6))):
            x0, y0 = int(rng.integers(0, 35)), int(rng.integers(0, 25))
            x1, y1 = int(rng.integers(x0 + 1, 41)), int(rng.integers(y0 + 1, 31))
            p = rng.integers(0, 3, (y1 - y0, x1 - x0, 3), dtype=np.uint8) * 100  # many exact zeros
            patches.append(((x0, y0, x1, y1), p))
        canvas = np.zeros_like(bg)
        for (x0, y0, x1, y1), p in patches:
            canvas[y0:y1, x0:x1] = p
        assert np.array_equal(motion.compose_map(bg, patches), motion.fill_from_background(canvas, bg))


def test_published_maps_equal_the_straightforward_rule(mini: Path, tmp_path: Path) -> None:
    out = tmp_path / "prep" / "motion" / "published"
    report = build_motion_maps(mini, out, workers=2, progress=False)
    assert report.problems == [] and report.to_dict()["written"] == 9
    build_reference(mini, tmp_path / "ref")
    assert compare_with_reference(mini, out, tmp_path / "ref") == 9
    # each needed frame is read once per camera: no more reads than frames
    assert all(c.frames_read <= c.n_frames for c in report.cameras)
    assert (out / "run_info.json").exists()


def test_map_content_follows_the_rule(mini: Path, tmp_path: Path) -> None:
    """Independent of both implementations: pasted boxes show the frame, the rest shows the background."""
    out = tmp_path / "maps"
    build_motion_maps(mini, out, workers=1, progress=False)
    tracks = json.loads((mini / "train-tracks.json").read_text())
    uuid, t = next((u, t) for u, t in tracks.items() if t["frames"][0].startswith("train/S01/c001"))
    m = cv2.imread(str(out / f"{uuid}.jpg")).astype(int)
    bg = cv2.imread(str(background_path(out, "train/S01/c001"))).astype(int)
    # the background is the mean of all 40 frames (stride 1)
    frames = [cv2.imread(str(p)).astype(float) for p in sorted((mini / "train/S01/c001/img1").glob("*.jpg"))]
    assert np.abs(bg - np.mean(frames, axis=0)).mean() < 1.0
    # the box of the last pasted frame shows that frame (the last paste wins)
    last = max(paste_positions(t["boxes"]))
    x, y, w, h = t["boxes"][last]
    frame = cv2.imread(str(mini / t["frames"][last])).astype(int)
    assert np.abs(m[y:y + h, x:x + w] - frame[y:y + h, x:x + w]).mean() < 3
    # far from every box the map is the background
    mask = np.ones(m.shape[:2], bool)
    for x, y, w, h in t["boxes"]:
        mask[max(0, y - 3):y + h + 3, max(0, x - 3):x + w + 3] = False
    assert np.abs(m[mask] - bg[mask]).mean() < 1.5


def test_black_pasted_pixels_take_the_background_as_in_the_original(mini: Path, tmp_path: Path) -> None:
    canvas = np.zeros((4, 4, 3), np.uint8)
    canvas[1, 1] = (0, 0, 5)  # pasted, not zero in all channels: kept
    canvas[2, 2] = (0, 0, 0)  # "pasted" but exactly black: indistinguishable, takes the background
    bg = np.full((4, 4, 3), 77, np.uint8)
    out = motion.fill_from_background(canvas.copy(), bg)
    assert tuple(out[1, 1]) == (0, 0, 5) and tuple(out[2, 2]) == (77, 77, 77) and (out[0] == 77).all()
    # on a map: the first vehicle of each camera is black; where its last pasted frame is exactly zero the map
    # shows the background
    maps = tmp_path / "maps"
    build_motion_maps(mini, maps, workers=1, progress=False)
    best = None
    for name in ("train-tracks.json", "test-tracks.json"):
        for uuid, t in json.loads((mini / name).read_text()).items():
            i = paste_positions(t["boxes"])[-1]  # the last paste is never overwritten
            x, y, w, h = t["boxes"][i]
            frame = cv2.imread(str(mini / t["frames"][i]))
            zero = np.zeros(frame.shape[:2], bool)
            zero[y:y + h, x:x + w] = ~frame[y:y + h, x:x + w].any(axis=2)
            if best is None or zero.sum() > best[2].sum():
                best = (uuid, "/".join(t["frames"][0].split("/")[:3]), zero)
    assert best is not None and best[2].sum() >= 10  # JPEG noise leaves few exactly-black pixels, but some
    uuid, cam, zero = best
    m = cv2.imread(str(maps / f"{uuid}.jpg")).astype(int)
    bg_img = cv2.imread(str(background_path(maps, cam))).astype(int)
    assert m[zero].mean() > 20 and np.abs(m[zero] - bg_img[zero]).mean() < 20


def test_iou_and_trajectory_variants(mini: Path, tmp_path: Path) -> None:
    tracks = json.loads((mini / "train-tracks.json").read_text())
    for t in tracks.values():
        pos = paste_positions(t["boxes"], "iou")
        assert pos[0] == 0
        assert all(box_iou(t["boxes"][a], t["boxes"][b]) <= 0.05 for a, b in zip(pos, pos[1:]))
        # every skipped box overlaps the box pasted last before it
        for i in range(len(t["boxes"])):
            if i not in pos:
                last = max(p for p in pos if p < i)
                assert box_iou(t["boxes"][i], t["boxes"][last]) > 0.05
    for variant in ("iou", "trajectory", "iou_trajectory"):
        out = tmp_path / variant
        assert build_motion_maps(mini, out, variant=variant, workers=1, progress=False).problems == []
        assert len(list(out.glob("*.jpg"))) == 9
    uuid, t = next(iter(tracks.items()))
    traj = cv2.imread(str(tmp_path / "trajectory" / f"{uuid}.jpg")).astype(int)
    x, y, w, h = t["boxes"][len(t["boxes"]) // 2]
    cx, cy = x + w // 2, y + h // 2
    b, g, r = traj[cy, cx]
    assert r > 150 and g < 100 and b < 100  # the red centre line passes through every centre


def test_ramp_variants_show_direction_and_bare_drops_the_scene(mini: Path, tmp_path: Path) -> None:
    tracks = json.loads((mini / "train-tracks.json").read_text())
    for variant in ("published", "ramp", "bare_ramp"):
        assert build_motion_maps(mini, tmp_path / variant, variant=variant, workers=1, progress=False).problems == []
    uuid, t = max(tracks.items(), key=lambda kv: len(kv[1]["boxes"]))
    ramp = cv2.imread(str(tmp_path / "ramp" / f"{uuid}.jpg")).astype(int)
    bare = cv2.imread(str(tmp_path / "bare_ramp" / f"{uuid}.jpg")).astype(int)

    def centre(i: int) -> tuple[int, int]:
        x, y, w, h = t["boxes"][i]
        return y + h // 2, x + w // 2

    n = len(t["boxes"])
    first, last = ramp[centre(1)], ramp[centre(n - 2)]
    assert first[0] > 150 and first[2] < 110  # blue at the start (BGR)
    assert last[2] > 150 and last[0] < 110  # red at the end
    assert np.abs(bare[centre(n - 2)] - ramp[centre(n - 2)]).max() < 40  # same line on both
    covered = np.zeros(bare.shape[:2], bool)
    for x, y, w, h in t["boxes"]:
        covered[max(0, y - 8):y + h + 8, max(0, x - 8):x + w + 8] = True
    assert bare[~covered].max() < 40  # nothing of the background away from the track
    pub = cv2.imread(str(tmp_path / "published" / f"{uuid}.jpg")).astype(int)
    assert np.abs(ramp[~covered] - pub[~covered]).mean() < 3  # the ramp map is the published one plus the line


def test_resumable_and_force(mini: Path, tmp_path: Path) -> None:
    out = tmp_path / "maps"
    build_motion_maps(mini, out, workers=1, progress=False)
    again = build_motion_maps(mini, out, workers=1, progress=False)
    assert again.to_dict()["written"] == 0 and again.to_dict()["frames_read"] == 0
    victim = sorted(out.glob("*.jpg"))[0]
    before = victim.read_bytes()
    victim.unlink()
    third = build_motion_maps(mini, out, workers=1, progress=False)
    assert third.to_dict()["written"] == 1 and victim.read_bytes() == before
    assert build_motion_maps(mini, out, workers=1, force=True, progress=False).to_dict()["written"] == 9


def test_errors_name_camera_and_track(tmp_path: Path) -> None:
    data = make_mini_dataset(tmp_path / "data", n_frames=20)
    extract_dataset(data, only_referenced=True, workers=1, progress=False)
    report = build_motion_maps(data, tmp_path / "maps", workers=1, progress=False)
    assert len(report.problems) == 3 and all("--only-referenced" in p for p in report.problems)
    extract_dataset(data, workers=1, progress=False)
    tracks = json.loads((data / "test-tracks.json").read_text())
    uuid = next(iter(tracks))
    tracks[uuid]["frames"][1] = "validation/S02/c006/img1/000999.jpg"
    (data / "test-tracks.json").write_text(json.dumps(tracks))
    report = build_motion_maps(data, tmp_path / "maps", workers=1, progress=False)
    assert len(report.problems) == 1
    assert "validation/S02/c006" in report.problems[0] and uuid in report.problems[0]
    assert "000999.jpg" in report.problems[0]
    tracks[uuid]["boxes"] = tracks[uuid]["boxes"][:-1]
    (data / "test-tracks.json").write_text(json.dumps(tracks))
    with pytest.raises(ValueError, match=f"track {uuid}: field 'boxes'"):
        motion.load_tracks_by_camera(data)
    with pytest.raises(ValueError, match="unknown motion-map variant"):
        build_motion_maps(data, tmp_path / "x", variant="nope", progress=False)


def test_figures(mini: Path, tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from lib.motion.figures import backgrounds_figure, motion_gallery

    build_motion_maps(mini, motion.motion_dir(tmp_path, "published"), workers=1, progress=False)
    fig = motion_gallery(mini, tmp_path, "published", n=4)
    assert len(fig.axes) == 12  # 2 train + 2 test tracks x (first frame, last frame, map)
    assert len(backgrounds_figure(motion.motion_dir(tmp_path, "published")).axes) == 3


def test_cli(mini: Path, tmp_path: Path) -> None:
    out = tmp_path / "prep" / "motion" / "published"
    assert motion.main([str(mini), str(out), "--splits", "test", "--workers", "1"]) == 0
    assert len(list(out.glob("*.jpg"))) == 3
    assert len(list((out / "backgrounds").glob("*.jpg"))) == 1


def test_tiny_preset_equals_reference(tiny_dataset: Path, tmp_path: Path) -> None:
    data = tmp_path / "tiny"
    shutil.copytree(tiny_dataset, data, ignore=shutil.ignore_patterns("img1"))
    extract_dataset(data, workers=2, progress=False)
    out = tmp_path / "ours"
    report = build_motion_maps(data, out, workers=2, progress=False)
    assert report.problems == []
    build_reference(data, tmp_path / "ref")
    n = compare_with_reference(data, out, tmp_path / "ref")
    assert n == report.to_dict()["n_tracks"] > 0
    cam = report.cameras[0].camera
    assert_same_image(background_path(out, cam), background_path(tmp_path / "ref", cam))
    ref_bg = reference_background(data / cam)
    ours_bg = cv2.imread(str(background_path(out, cam))).astype(int)
    assert np.abs(ours_bg - ref_bg).mean() < 3.0  # the exact mean vs its JPEG


def test_background_mean_is_truncated_as_the_original() -> None:
    """The original's ``astype(int)``: 5/3 -> 1, 8/3 -> 2 (rounding would give 2 and 3), 764/3 -> 254."""
    total = np.array([[[5, 8, 764]]], np.uint32)
    assert motion.mean_to_uint8(total, 3).tolist() == [[[1, 2, 254]]]
