"""One camera end to end: choose routes, simulate and schedule its vehicles, pick the annotated frames of its
tracks, work out the true context of each track, and render its video (MJPG ``.avi``).

A job is self-contained (settings, seed, camera index, vehicles) so cameras render in parallel processes and the
result does not depend on which process renders which camera.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lib.synthetic.avi import MjpegAviWriter
from lib.synthetic.presets import Settings
from lib.synthetic.traffic import (
    Motion,
    Placed,
    choose_window,
    in_span,
    key_frames,
    longest_run,
    relations,
    simulate,
    visibility,
)
from lib.synthetic.vehicles import draw_shadow, draw_vehicle, model, project_vehicle
from lib.synthetic.vocab import COLOURS, TYPES
from lib.synthetic.world import CameraScene, build_camera, rng_for

GAP_FRAMES = 6  # a vehicle stays annotated through dips below the size threshold this short


@dataclass(frozen=True)
class VehicleJob:
    key: str  # track uuid, or "traffic-<n>"
    vtype: str
    colour: str
    manoeuvre: str
    track: bool
    index: int  # stable index of the vehicle in its camera (seeds its own random choices)


@dataclass(frozen=True)
class CameraJob:
    settings: Settings
    seed: int
    camera_index: int
    vehicles: tuple[VehicleJob, ...]
    video_path: str | None  # None: plan only (no video)


def _target_len(settings: Settings, rng: np.random.Generator) -> int:
    n = math.exp(math.log(settings.track_len_median) + settings.track_len_sigma * float(rng.normal()))
    return int(np.clip(round(n), 1, settings.max_track_frames))


def _plan_vehicle(scene: CameraScene, v: VehicleJob, settings: Settings, seed: int, prev: tuple[Any, int] | None):
    """Route, motion, projection and annotated window of one vehicle (independent of its start time)."""
    rng = rng_for(seed, 10, scene.camera_index, v.index)
    routes = scene.routes_for(v.manoeuvre, v.vtype) if v.track else \
        [r for r in scene.all_routes if r.manoeuvre == v.manoeuvre]
    if not routes:
        raise ValueError(f"camera {scene.name} has no usable route for a {v.vtype} doing {v.manoeuvre!r} "
                         f"(it offers {sorted(scene.manoeuvres_for(v.vtype))})")
    order = [int(i) for i in rng.permutation(len(routes))]
    platoon = prev is not None and rng.random() < settings.platoon
    if platoon:
        assert prev is not None
        same = [i for i in order if routes[i].entry == prev[0].route.entry and routes[i].lane_in ==
                prev[0].route.lane_in]
        order = same + [i for i in order if i not in same]
    lo, hi = TYPES[v.vtype].cruise
    cruise = float(rng.uniform(lo, hi))
    wait = 0
    if v.manoeuvre == "stop":
        wait = int(np.clip(round(settings.stop_wait_median * math.exp(0.9 * float(rng.normal()))), 5,
                           settings.stop_wait_max))
    target = _target_len(settings, rng)
    cm = model(v.vtype)
    # Second pass: accept a turn, lane change or stop that is at least 60% in view (else the route is rejected).
    for i, min_cover in [(i, 0.8) for i in order] + [(i, 0.6) for i in order]:
        motion = simulate(routes[i], v.vtype, cruise, wait)
        proj = project_vehicle(cm, motion.pos, motion.heading, scene.cam, scene.style.sun_vec)
        ok, on_screen = visibility(proj, scene.cam)
        if not v.track:
            return motion, proj, on_screen, None, platoon
        run = longest_run(ok, max_gap=GAP_FRAMES)
        if run is None:
            continue
        need_key = v.manoeuvre != "straight"
        cap = settings.max_track_frames
        window = choose_window(run, key_frames(motion), target, rng, need_key, min_cover)
        if window is None:
            continue
        if window[1] - window[0] + 1 > cap:  # keep the key event, cut the rest
            k = key_frames(motion)
            start = window[0] if k is None else max(window[0], min(k[0], window[1] - cap + 1))
            window = (start, start + cap - 1)
        return motion, proj, on_screen, window, platoon
    raise RuntimeError(f"camera {scene.name}: no route shows a {v.vtype} doing {v.manoeuvre!r} "
                       f"(vehicle {v.key}); routes tried: {[r.name for r in routes]}")


def _describe_other(v: VehicleJob) -> dict[str, str]:
    return {"type": v.vtype, "colour": v.colour}


def run_camera(job: CameraJob) -> dict[str, Any]:
    settings, seed = job.settings, job.seed
    scene = build_camera(settings, seed, job.camera_index)
    srng = rng_for(seed, 11, job.camera_index)
    placed = Placed()
    planned: list[tuple[VehicleJob, Motion, Any, np.ndarray, tuple[int, int] | None]] = []
    cursor = 0.0
    prev: tuple[Motion, int] | None = None
    for v in job.vehicles:
        motion, proj, on_screen, window, platoon = _plan_vehicle(scene, v, settings, seed, prev)
        cursor += float(srng.exponential(settings.spawn_gap))
        start = prev[1] if (platoon and prev is not None and motion.route.entry == prev[0].route.entry
                            and motion.route.lane_in == prev[0].route.lane_in) else int(cursor)
        t0 = placed.place(motion, start)
        prev = (motion, t0)
        planned.append((v, motion, proj, on_screen, window))
    motions = [p[1] for p in planned]
    tracks: dict[str, Any] = {}
    last_frame = 0
    for v, m, proj, on_screen, window in planned:
        shown = np.nonzero(on_screen)[0]
        if len(shown):
            last_frame = max(last_frame, m.t0 + int(shown[-1]))
        if window is None:
            continue
        local = np.arange(window[0], window[1] + 1)
        frames = local + m.t0
        rel = relations(m, motions, frames)
        ctx: dict[str, Any] = {
            "junction": bool(scene.layout.junction and in_span(m, frames, m.route.junction_span)),
            "crosswalk": bool(not scene.layout.junction and m.route.manoeuvre == "stop"),
            "lanes": int(m.route.lanes),
            "lane": int(m.route.lane_in),
            "side": m.route.side,
        }
        for name in ("following", "followed_by", "next_to"):
            j = rel[name]
            ctx[name] = None if j is None else _describe_other(planned[j][0])
        boxes = []
        for k in local:
            x0, y0, x1, y1 = proj.bbox[k]
            bx0 = int(np.clip(math.floor(x0), 0, settings.width - 1))
            by0 = int(np.clip(math.floor(y0), 0, settings.height - 1))
            bx1 = int(np.clip(math.ceil(x1), bx0 + 1, settings.width))
            by1 = int(np.clip(math.ceil(y1), by0 + 1, settings.height))
            boxes.append([bx0, by0, bx1 - bx0, by1 - by0])
        tracks[v.key] = {
            "frames": [int(f) + 1 for f in frames],  # 1-based, as img1/%06d.jpg
            "boxes": boxes,
            "route": m.route.name,
            "context": ctx,
            "stopped_frames": 0 if m.stop_frames is None else int(m.stop_frames[1] - m.stop_frames[0] + 1),
        }
    n_frames = max(last_frame + 1, max((t["frames"][-1] for t in tracks.values()), default=0))
    on_screen_total = sum(int(np.count_nonzero(p[3])) for p in planned)
    if job.video_path is not None:
        _render(scene, planned, n_frames, Path(job.video_path), settings)
    return {"camera": scene.name, "rel_dir": scene.rel_dir, "n_frames": int(n_frames),
            "n_vehicles": len(job.vehicles), "n_tracks": len(tracks), "tracks": tracks,
            "manoeuvres": sorted(scene.manoeuvres), "layout": scene.layout.kind,
            "mean_on_screen": round(on_screen_total / max(1, n_frames), 2)}


def _render(scene: CameraScene, planned: list, n_frames: int, path: Path, settings: Settings) -> None:
    bg, _ = scene.background()
    per_frame: list[list[tuple[int, int]]] = [[] for _ in range(n_frames)]
    for i, (_v, m, _proj, on_screen, _w) in enumerate(planned):
        for k in np.nonzero(on_screen)[0]:
            f = m.t0 + int(k)
            if f < n_frames:
                per_frame[f].append((i, int(k)))
    shadow = tuple(float(c) * 0.5 for c in np.asarray(scene.style.asphalt[::-1]) * scene.style.light_bgr)
    light = scene.style.light_bgr
    writer = MjpegAviWriter(path, settings.width, settings.height, settings.fps, settings.jpeg_quality)
    try:
        for f in range(n_frames):
            img = bg.copy()
            active = per_frame[f]
            for i, k in active:
                draw_shadow(img, planned[i][2], k, shadow)
            active = sorted(active, key=lambda ik: -float(planned[ik[0]][2].part_depth[ik[1]].mean()))
            for i, k in active:
                v = planned[i][0]
                draw_vehicle(img, model(v.vtype), planned[i][2], k, COLOURS[v.colour].rgb, light)
            writer.write(img)
    finally:
        writer.close()
