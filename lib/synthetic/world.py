"""A camera of the synthetic world, rebuilt deterministically from (settings, seed, camera index).

The scenario's layout, style and props come from the scenario's seed (shared by its cameras); the camera pose from
the camera's seed. Only routes the camera sees well enough are usable: the visible part must be long enough and a
turn's curve, a lane change or a stop line must be in view.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from lib.synthetic.background import Prop, Style, make_props, make_style, paint_ground, render_background
from lib.synthetic.presets import ScenarioSpec, Settings
from lib.synthetic.scene import STEP, Camera, Layout, Route, make_layout, make_routes, place_camera
from lib.synthetic.traffic import box_visibility, longest_run
from lib.synthetic.vehicles import model, project_corners
from lib.synthetic.vocab import TYPES

MIN_VISIBLE_M = 14.0


def rng_for(seed: int, *key: int) -> np.random.Generator:
    """An independent random stream per purpose: the same (seed, key) always gives the same numbers."""
    return np.random.default_rng(np.random.SeedSequence(entropy=int(seed), spawn_key=tuple(int(k) for k in key)))


@dataclass
class CameraScene:
    scenario: ScenarioSpec
    scenario_index: int
    camera_id: str  # c001
    camera_index: int
    layout: Layout
    style: Style
    props: list[Prop]
    cam: Camera
    routes: list[Route]  # routes usable by some vehicle type
    usable: dict[str, list[Route]]  # vehicle type -> usable routes
    all_routes: list[Route]  # every route of the layout (unannotated traffic drives them all)
    ground_res: float
    seed: int

    @property
    def name(self) -> str:
        return f"{self.scenario.scenario}/{self.camera_id}"

    @property
    def rel_dir(self) -> str:
        """``train/S01/c001``."""
        return f"{self.scenario.folder}/{self.scenario.scenario}/{self.camera_id}"

    @cached_property
    def manoeuvres(self) -> set[str]:
        return {r.manoeuvre for r in self.routes}

    def manoeuvres_for(self, vtype: str) -> set[str]:
        return {r.manoeuvre for r in self.usable[vtype]}

    def routes_for(self, manoeuvre: str, vtype: str) -> list[Route]:
        return [r for r in self.usable[vtype] if r.manoeuvre == manoeuvre]

    def background(self) -> tuple[np.ndarray, np.ndarray]:
        """The empty frame (BGR) and the image-space road mask."""
        rng = rng_for(self.seed, 3, self.scenario_index)
        ground, mask = paint_ground(self.layout, self.style, self.ground_res, rng)
        return render_background(self.layout, self.style, self.props, self.cam, ground, mask, self.ground_res)


def _usable(route: Route, cam: Camera, vtype: str) -> bool:
    """Whether a vehicle of ``vtype`` on ``route`` is annotatable long enough, with its key event in view (the same
    rule as the annotation window, on the vehicle's 3D bounding box)."""
    idx = np.arange(0, len(route.pts), int(round(1.0 / STEP)))
    uv, depth = project_corners(model(vtype), route.pts[idx], route.heading[idx], cam)
    ok, _ = box_visibility(np.concatenate([uv.min(1), uv.max(1)], 1), depth.min(1), cam)
    run = longest_run(ok, max_gap=4)
    if run is None or run[1] - run[0] + 1 < MIN_VISIBLE_M:
        return False
    s = idx * STEP
    in_run = np.zeros(len(idx), bool)
    in_run[run[0]:run[1] + 1] = True
    if route.manoeuvre in ("left", "right", "lane_change"):
        k = (s >= route.key[0]) & (s <= route.key[1])
        return bool(in_run[k].mean() >= 0.95)
    if route.manoeuvre == "stop":
        assert route.stop_at is not None
        k = (s >= route.stop_at - 18.0) & (s <= route.stop_at - 1.0)
        return bool(in_run[k].all())
    return True


def build_camera(settings: Settings, seed: int, camera_index: int) -> CameraScene:
    cams = settings.cameras()
    if not 0 <= camera_index < len(cams):
        raise IndexError(f"camera index {camera_index} out of range (preset {settings.preset} has {len(cams)})")
    spec, cam_id = cams[camera_index]
    sc_index = settings.scenarios.index(spec)
    srng = rng_for(seed, 1, sc_index)
    layout = make_layout(spec.kind, srng)
    style = make_style(srng)
    props = make_props(layout, style, srng)
    cam = place_camera(layout, settings.width, settings.height, rng_for(seed, 2, camera_index))
    all_routes = make_routes(layout)
    usable = {vt: [r for r in all_routes if _usable(r, cam, vt)] for vt in TYPES}
    routes = [r for r in all_routes if any(r in rs for rs in usable.values())]
    res = float(np.clip(0.1 * 640 / settings.width, 0.06, 0.2))
    return CameraScene(spec, sc_index, cam_id, camera_index, layout, style, props, cam, routes, usable, all_routes,
                       res, seed)


def camera_index_of(settings: Settings, camera: str) -> int:
    """``S01/c001`` (or ``c001``) -> index into ``settings.cameras()``."""
    for i, (sc, cam) in enumerate(settings.cameras()):
        if camera in (f"{sc.scenario}/{cam}", cam):
            return i
    known = [f"{sc.scenario}/{cam}" for sc, cam in settings.cameras()]
    raise ValueError(f"unknown camera {camera!r}; preset {settings.preset} has {known}")
