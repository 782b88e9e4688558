"""Presets: sizes, resolution, cameras and the knobs of the generator.

Every field can be overridden (``generate(preset, **overrides)``); the resolved settings are written to
``dataset.json``. Camera ids follow the real numbering (cameras are numbered across scenarios); ``folder`` is where
the video lives (``validation`` for the scenario kept out of training, as S02 in the real test split) and ``role``
says which split's tracks it holds (``train``, ``test`` or ``mixed``, as S03 in the real data).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ScenarioSpec:
    scenario: str  # S01
    kind: str  # cross | cross_wide | tee | road
    cameras: tuple[str, ...]  # c001, ...
    folder: str  # train | validation
    role: str  # train | test | mixed


@dataclass(frozen=True)
class Settings:
    preset: str
    width: int
    height: int
    n_train: int
    n_test: int
    scenarios: tuple[ScenarioSpec, ...]
    fps: float = 10.0
    traffic_share: float = 0.3  # extra unannotated vehicles, per annotated track
    spawn_gap: float = 12.0  # mean frames between vehicle entries in a camera (denser traffic: fewer frames/track)
    platoon: float = 0.3  # probability that a vehicle enters right behind the previous one, same lane
    track_len_median: float = 30.0  # annotated frames: log-normal with this median (the real test median is 30)
    track_len_sigma: float = 1.0
    max_track_frames: int = 1046  # the real maximum
    stop_wait_median: float = 40.0  # frames stopped at a stop line (log-normal)
    stop_wait_max: int = 900
    unseen_test_share: float = 0.75  # test tracks from the scenario never seen in training
    noise_rate: float = 0.08  # sentences with annotator noise (typo or near-colour confusion)
    test_only_share: float = 0.2  # test query sentences that use wording absent from training
    jpeg_quality: int = 92
    workers: int = 0  # processes rendering cameras; 0 = min(cpus, cameras, 4)

    def cameras(self) -> list[tuple[ScenarioSpec, str]]:
        return [(sc, cam) for sc in self.scenarios for cam in sc.cameras]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _c(a: int, b: int) -> tuple[str, ...]:
    return tuple(f"c{k:03d}" for k in range(a, b + 1))


PRESETS: dict[str, Settings] = {
    "tiny": Settings(
        preset="tiny", width=320, height=180, n_train=60, n_test=24,
        scenarios=(ScenarioSpec("S01", "cross", _c(1, 2), "train", "train"),
                   ScenarioSpec("S02", "cross_wide", _c(6, 6), "validation", "test"),
                   ScenarioSpec("S03", "tee", _c(10, 10), "train", "mixed")),
        max_track_frames=90, stop_wait_median=15.0, stop_wait_max=40, spawn_gap=10.0, traffic_share=0.25,
        track_len_median=24.0,
    ),
    "default": Settings(
        preset="default", width=640, height=360, n_train=440, n_test=300,
        scenarios=(ScenarioSpec("S01", "cross", _c(1, 3), "train", "train"),
                   ScenarioSpec("S02", "cross_wide", _c(6, 8), "validation", "test"),
                   ScenarioSpec("S03", "tee", _c(10, 12), "train", "mixed"),
                   ScenarioSpec("S04", "road", _c(16, 17), "train", "train")),
        max_track_frames=300, stop_wait_median=30.0, stop_wait_max=250,
    ),
    "large": Settings(
        preset="large", width=960, height=540, n_train=2498, n_test=530,
        scenarios=(ScenarioSpec("S01", "cross", _c(1, 5), "train", "train"),
                   ScenarioSpec("S02", "cross_wide", _c(6, 9), "validation", "test"),
                   ScenarioSpec("S03", "tee", _c(10, 15), "train", "mixed"),
                   ScenarioSpec("S04", "road", _c(16, 20), "train", "train"),
                   ScenarioSpec("S05", "cross", _c(21, 28), "train", "train")),
    ),
    # The real data's frame size and box sizes (1920x1080; boxes scale with the frame) on a few cameras: the input
    # of the paper-shape benchmarks (benchmarks/bench_train_pipeline.py, benchmarks/gpu_check.sh). Throughput per
    # sample needs real frame and box sizes, not every track.
    "paper_shape": Settings(
        preset="paper_shape", width=1920, height=1080, n_train=48, n_test=24,
        scenarios=(ScenarioSpec("S01", "cross", _c(1, 2), "train", "train"),
                   ScenarioSpec("S02", "cross_wide", _c(6, 6), "validation", "test"),
                   ScenarioSpec("S03", "tee", _c(10, 10), "train", "mixed")),
        max_track_frames=200, stop_wait_median=20.0, stop_wait_max=100,
    ),
}


def resolve(preset: str, **overrides: Any) -> Settings:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {sorted(PRESETS)}")
    base = PRESETS[preset]
    names = {f.name for f in dataclasses.fields(Settings)}
    bad = sorted(set(overrides) - names)
    if bad:
        raise ValueError(f"unknown generator setting(s) {bad}; known: {sorted(names - {'preset'})}")
    if "scenarios" in overrides:
        overrides["scenarios"] = tuple(s if isinstance(s, ScenarioSpec) else ScenarioSpec(**s)
                                       for s in overrides["scenarios"])
    s = dataclasses.replace(base, **overrides)
    if s.width % 2 or s.height % 2 or s.width < 64 or s.height < 36:
        raise ValueError(f"resolution {s.width}x{s.height}: width and height must be even and at least 64x36")
    if s.n_train < 0 or s.n_test < 0:
        raise ValueError("n_train and n_test must be >= 0")
    folders = {sc.folder for sc in s.scenarios}
    if not folders <= {"train", "validation"}:
        raise ValueError(f"scenario folders must be train or validation, got {sorted(folders)}")
    return s

