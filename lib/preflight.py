"""Pre-flight: everything a profile's run will need, checked before its first notebook starts.

``python -m lib.pipeline`` calls :func:`check` after planning and before 00_data, so that a missing text encoder is
one line in a list at second 1, not a 40-line traceback inside 04_train an hour later. It checks:

- **weights** — every configuration's ``model.backbone_weights`` (the file must exist; environment variables
  expanded) and its text encoder (``model.text_encoder_path`` or ``model.text_encoder``, resolved as
  :func:`lib.families.text_encoders.resolve_text_encoder` does: the packaged MiniLM, a folder, ``$CFNL_MODELS_DIR``);
- **data** — for a real ``data_root``: ``train-tracks.json``, ``test-tracks.json``, ``test-queries.json`` present
  and JSON objects; every camera a track references has its ``vdo.avi`` or extracted ``img1/`` frames; enough
  training tracks for 03's ``n_val`` (the split needs ``n_val + 1``);
- **disk** — free space, per file system, against an estimate of what the run writes: extracted frames (about the
  size of the videos they come from, for cameras not yet extracted), motion maps, the crop caches of the
  configurations that cache, the crop stores of those that store (one per crop geometry), and for a synthetic
  preset the generated dataset itself. The factors are measured on the default preset (the crop store's at paper
  shape; :data:`BYTES`); the estimate is an upper bound, not a promise.

Every problem is a :class:`Need` (what is missing, and where it goes); :class:`PreflightError` lists them all, one
line each. Nothing is written.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from lib.cityflow import camera_of
from lib.errors import MissingInputError
from lib.families import load_config
from lib.families.backbones import MissingWeightsError, resolve_weights_file
from lib.families.text_encoders import resolve_text_encoder
from lib.paths import artifacts_dir

# Measured on the default preset (640x360, 560 tracks, 23,380 boxes, 13,257 frames): videos 758 MB and their
# extracted frames 758 MB (frames are copied out of the MJPEG stream), motion maps 36 MB, crop caches 1.4 GB over
# five cached configurations.
BYTES = {
    "synthetic_per_track_pixel": 12.0,   # generated videos + extracted frames, per track and frame pixel
    "boxes_per_track": 42.0,             # synthetic default: 23,380 boxes / 560 tracks
    "motion_map_per_pixel": 0.3,         # one JPEG motion map per track, per frame pixel
    "frames_per_video_byte": 1.05,       # extracted JPEG frames per byte of vdo.avi
    # crop store (JPEG q95 4:4:4), per crop pixel: 0.22-0.40 measured at paper shape (1920x1080, 256-320 px crops;
    # benchmarks/bench_train_pipeline.py), the padded Part Two crops the largest
    "crop_store_per_crop_pixel": 0.4,
}
MARGIN = 1.2
"""Free space asked for: the estimate times this."""
REQUIRED_FILES = ("train-tracks.json", "test-tracks.json", "test-queries.json")


@dataclasses.dataclass(frozen=True)
class Need:
    kind: str  # weights | text_encoder | data | split | disk
    what: str
    where: str

    def line(self) -> str:
        return f"[{self.kind}] {self.what} -> {self.where}"


class PreflightError(MissingInputError):
    """What the run would miss, every item on its own line."""

    def __init__(self, profile: str, needs: Sequence[Need]) -> None:
        self.needs = list(needs)
        lines = "\n".join(f"  - {n.line()}" for n in self.needs)
        super().__init__(f"profile {profile!r}: pre-flight found {len(self.needs)} problem(s) before any notebook "
                         f"ran:\n{lines}")


def check_weights(config_paths: Iterable[Path], overrides: dict[str, Any] | None) -> list[Need]:
    """Backbone weights files and text encoders of every configuration (each missing one once, with every
    configuration that needs it)."""
    missing: dict[tuple[str, str], tuple[list[str], str, str]] = {}
    for path in config_paths:
        cfg = load_config(path, overrides)
        m = cfg.model
        weights = getattr(m, "backbone_weights", None)
        try:
            resolve_weights_file(weights, getattr(m, "backbone", ""))
        except MissingWeightsError as e:
            what = f"backbone {getattr(m, 'backbone', '?')} weights {weights!r}"
            entry = missing.setdefault(("weights", str(weights)),
                                       ([], what, str(e).split("No model hub is used: ", 1)[-1]))
            entry[0].append(cfg.name)
        encoder = getattr(m, "text_encoder_path", None) or getattr(m, "text_encoder", None)
        if encoder:
            try:
                resolve_text_encoder(encoder)
            except (FileNotFoundError, ModuleNotFoundError) as e:
                entry = missing.setdefault(("text_encoder", encoder), (
                    [], f"text encoder {encoder!r}", str(e).split(": ", 1)[-1]))
                entry[0].append(cfg.name)
    return [Need(kind, f"{what} (needed by {', '.join(names)})", where)
            for (kind, _), (names, what, where) in missing.items()]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def check_data(data_root: Path, n_val: int | None) -> tuple[list[Need], dict[str, Any]]:
    """Files, referenced cameras and the split size of a real dataset folder; returns the needs and what it
    counted (tracks, boxes, cameras, video bytes still to extract) for the disk estimate."""
    needs: list[Need] = []
    counts: dict[str, Any] = {"tracks": 0, "boxes": 0, "video_bytes_to_extract": 0, "frame_pixels": 0}
    tracks: dict[str, dict[str, Any]] = {}
    for name in REQUIRED_FILES:
        path = data_root / name
        data = _read_json(path) if path.exists() else None
        if not path.exists():
            needs.append(Need("data", f"{path}: not found", f"the CityFlow-NL release's {name} in {data_root}"))
        elif data is None:
            needs.append(Need("data", f"{path}: not a readable JSON object", f"a valid copy of the release's {name}"))
        elif name != "test-queries.json":
            tracks.update({f"{name}:{k}": v for k, v in data.items() if isinstance(v, dict)})
            if name == "train-tracks.json" and n_val is not None and len(data) <= n_val:
                needs.append(Need("split", f"{path}: {len(data)} training tracks, 03_text_augmentation n_val="
                                  f"{n_val} needs at least {n_val + 1}", "a smaller notebooks: 03_text_augmentation: "
                                  "n_val in the profile, or the full train-tracks.json"))
    cameras: dict[str, str] = {}
    for key, tr in tracks.items():
        counts["tracks"] += 1
        frames = tr.get("frames") or []
        counts["boxes"] += len(frames)
        if frames:  # a malformed frame path is the validator's (00_data) to name
            cameras.setdefault(camera_of(str(frames[0])), key.split(":", 1)[1])
    for cam, example in sorted(cameras.items()):
        cam_dir = data_root / cam
        video = cam_dir / "vdo.avi"
        extracted = (cam_dir / "img1" / ".frames_done.json").exists()
        if video.exists() and not extracted:
            counts["video_bytes_to_extract"] += video.stat().st_size
        if not video.exists() and not (cam_dir / "img1").is_dir():
            needs.append(Need("data", f"{video}: no video and no img1/ frames (camera of track {example})",
                              f"the camera folder {cam} of the release"))
    counts["cameras"] = len(cameras)
    return needs, counts


def _free_bytes(path: Path) -> tuple[Path, int]:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p, shutil.disk_usage(p).free


def estimate_bytes(profile: Any, config_paths: Sequence[Path], counts: dict[str, Any]) -> dict[str, float]:
    """What the run writes, by kind, in bytes (see :data:`BYTES`)."""
    out: dict[str, float] = {}
    if "data_root" in profile.dataset:
        out["frames"] = counts["video_bytes_to_extract"] * BYTES["frames_per_video_byte"]
        pixels = 2560 * 1920  # the real release's largest frames: an upper bound per motion map
        n_tracks, n_boxes = counts["tracks"], counts["boxes"]
    else:
        from lib.synthetic import resolve

        s = resolve(profile.dataset["preset"])
        pixels = s.width * s.height
        n_tracks = s.n_train + s.n_test
        n_boxes = n_tracks * BYTES["boxes_per_track"]
        if not (Path(counts.get("data_root", "")) / "dataset.json").exists():  # not generated yet
            out["synthetic dataset"] = n_tracks * pixels * BYTES["synthetic_per_track_pixel"]
    out["motion maps"] = n_tracks * pixels * BYTES["motion_map_per_pixel"]
    keys: set[tuple[Any, ...]] = set()
    cache = store = 0.0
    for path in config_paths:
        cfg = load_config(path, profile.overrides)
        size = getattr(cfg.model, "image_size", None)
        if getattr(cfg.data, "crop_store", False):  # one store per geometry, every box of the data (an upper bound)
            side = size or cfg.model.crop_size
            key = ("store", cfg.family, side, getattr(cfg.data, "crop_area", None), getattr(cfg.data, "pad", None))
            if key not in keys:
                keys.add(key)
                store += n_boxes * side * side * BYTES["crop_store_per_crop_pixel"]
        if not getattr(cfg.data, "cache_crops", False) or not size:
            continue
        key = (size, getattr(cfg.data, "crop_area", 1.0), getattr(cfg.data, "crop_cache_frames", None))
        if key in keys:
            continue
        keys.add(key)
        per_track = getattr(cfg.data, "crop_cache_frames", None)
        boxes = n_tracks * per_track if per_track else n_boxes
        cache += (boxes + n_tracks) * size * size * 3
    if cache:
        out["crop caches"] = cache
    if store:
        out["crop stores"] = store
    return out


def check_disk(profile: Any, data_root: Path, config_paths: Sequence[Path], counts: dict[str, Any]) -> list[Need]:
    est = estimate_bytes(profile, config_paths, counts)
    by_fs: dict[Path, tuple[int, float, list[str]]] = {}
    for kind, n in est.items():
        target = data_root if kind in ("frames", "synthetic dataset") else artifacts_dir()
        where, free = _free_bytes(target)
        dev = Path(os.path.realpath(where))
        _, total, kinds = by_fs.get(dev, (free, 0.0, []))
        by_fs[dev] = (free, total + n, [*kinds, f"{kind} {n / 1e9:.2f} GB"])
    needs = []
    for dev, (free, total, kinds) in by_fs.items():
        if free < total * MARGIN:
            needs.append(Need("disk", f"{dev}: {free / 1e9:.1f} GB free, the run writes about {total / 1e9:.1f} GB "
                              f"there ({', '.join(kinds)}; asked: x{MARGIN})",
                              "free space there, or point CFNL_ARTIFACTS / data_root at a larger disk"))
    return needs


def check(profile: Any, data_root: Path | str, config_paths: Sequence[Path], n_val: int | None) -> dict[str, Any]:
    """Run every check; raise :class:`PreflightError` listing every problem, else return what was counted.
    ``data_root`` is the dataset folder, or the message saying why the profile's ``data_root`` is not one."""
    needs = check_weights(config_paths, profile.overrides)
    if isinstance(data_root, str):  # the profile's data_root does not resolve: nothing else to check there
        needs.append(Need("data", data_root.split(". Put ", 1)[0],
                          "the real CityFlow-NL folder (train/, validation/, train-tracks.json, test-tracks.json, "
                          "test-queries.json), or set the environment variable it names"))
        raise PreflightError(profile.name, needs)
    counts: dict[str, Any] = {"data_root": str(data_root)}
    if "data_root" in profile.dataset:
        data_needs, counted = check_data(data_root, n_val)
        needs += data_needs
        counts.update(counted)
    needs += check_disk(profile, data_root, config_paths, counts)
    if needs:
        raise PreflightError(profile.name, needs)
    return counts
