"""Road layouts, routes and pinhole cameras of the synthetic world.

World coordinates are metres: ``x`` east, ``y`` north, ``z`` up; traffic drives on the right. A layout is a set of
arms (roads) leaving a centre, joined by a junction (``cross``, ``cross_wide``, ``tee``) or a plain multi-lane road
with a crosswalk (``road``). Routes are lane-following polylines (straight, left and right turns, lane changes)
sampled every ``STEP`` metres; a camera is a pinhole looking down at the junction from a pole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

LANE_W = 3.5  # lane width, m
ARM_LEN = 85.0  # arms extend this far from the centre, m
STEP = 0.25  # route sampling step, m


@dataclass(frozen=True)
class Arm:
    angle: float  # outward direction, radians
    lanes: int  # lanes per direction

    @property
    def u(self) -> np.ndarray:
        return np.array([math.cos(self.angle), math.sin(self.angle)])


def right_normal(d: np.ndarray) -> np.ndarray:
    """The right-hand normal of a 2D direction (x east, y north)."""
    return np.array([d[1], -d[0]])


@dataclass(frozen=True)
class Layout:
    kind: str  # cross | cross_wide | tee | road
    arms: tuple[Arm, ...]
    median: float  # width of the median strip between the two directions, m
    junction: bool  # True: arms meet in an intersection; False: a straight road with a crosswalk

    @property
    def half_width(self) -> float:
        return max(a.lanes for a in self.arms) * LANE_W + self.median / 2

    @property
    def stop_dist(self) -> float:
        """Distance of the stop lines from the centre."""
        return self.half_width + 3.5 if self.junction else 4.0

    def inbound(self, arm: Arm, lane: int, s: float) -> np.ndarray:
        """Centre of inbound ``lane`` (0 = next to the median) of ``arm`` at distance ``s`` from the centre."""
        return arm.u * s + right_normal(-arm.u) * ((lane + 0.5) * LANE_W + self.median / 2)

    def outbound(self, arm: Arm, lane: int, s: float) -> np.ndarray:
        return arm.u * s + right_normal(arm.u) * ((lane + 0.5) * LANE_W + self.median / 2)


def make_layout(kind: str, rng: np.random.Generator) -> Layout:
    rot = float(rng.uniform(-0.25, 0.25))
    if kind == "cross":
        arms = tuple(Arm(rot + k * math.pi / 2, 2) for k in range(4))
        return Layout(kind, arms, median=0.3, junction=True)
    if kind == "cross_wide":
        arms = tuple(Arm(rot + k * math.pi / 2, 3 if k % 2 == 0 else 2) for k in range(4))
        return Layout(kind, arms, median=2.0, junction=True)
    if kind == "tee":
        arms = (Arm(rot, 2), Arm(rot + math.pi / 2, 2), Arm(rot + math.pi, 2))
        return Layout(kind, arms, median=0.3, junction=True)
    if kind == "road":
        arms = (Arm(rot, 3), Arm(rot + math.pi, 3))
        return Layout(kind, arms, median=1.2, junction=False)
    raise ValueError(f"unknown layout kind {kind!r} (expected cross, cross_wide, tee or road)")


@dataclass
class Route:
    name: str
    manoeuvre: str  # straight | left | right | stop | lane_change
    pts: np.ndarray  # (N, 2) positions every STEP metres
    heading: np.ndarray  # (N,) radians
    key: tuple[float, float]  # arc-length span of the manoeuvre's key event (turn, lane change, stop line)
    junction_span: tuple[float, float] | None  # arc-length span inside the junction box
    stop_at: float | None = None  # arc length of the stop line (stop routes)
    lane_in: int = 0
    lane_out: int = 0
    lanes: int = 2  # lanes of the entry road per direction
    side: str = ""  # lane change direction (left | right)
    entry: int = 0  # entry arm index

    @property
    def length(self) -> float:
        return float(STEP * (len(self.pts) - 1))


def _resample(poly: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resample a polyline every STEP metres; return points, headings and the original vertices' arc lengths."""
    seg = np.linalg.norm(np.diff(poly, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    s = np.arange(0.0, cum[-1] + 1e-9, STEP)
    pts = np.stack([np.interp(s, cum, poly[:, 0]), np.interp(s, cum, poly[:, 1])], axis=1)
    d = np.gradient(pts, axis=0)
    heading = np.unwrap(np.arctan2(d[:, 1], d[:, 0]))
    return pts, heading, cum


def _line_intersection(p: np.ndarray, d: np.ndarray, q: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Intersection of lines ``p + t d`` and ``q + s e``."""
    a = np.array([[d[0], -e[0]], [d[1], -e[1]]])
    t, _ = np.linalg.solve(a, q - p)
    return p + t * d


def _bezier(p0: np.ndarray, c: np.ndarray, p1: np.ndarray, n: int = 48) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * c + t ** 2 * p1


def _arm_towards(layout: Layout, direction: np.ndarray) -> int | None:
    best, best_dot = None, 0.9
    for k, arm in enumerate(layout.arms):
        dot = float(arm.u @ direction)
        if dot > best_dot:
            best, best_dot = k, dot
    return best


def _rot(v: np.ndarray, a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def make_routes(layout: Layout) -> list[Route]:
    """Every lane-following route of a layout (stop routes are straight routes with a stop line)."""
    routes: list[Route] = []
    r = layout.stop_dist
    for a_idx, arm in enumerate(layout.arms):
        d_in = -arm.u
        for lane in range(arm.lanes):
            start = layout.inbound(arm, lane, ARM_LEN)
            p1 = layout.inbound(arm, lane, r)
            targets: list[tuple[str, np.ndarray]] = [("straight", d_in)]
            if layout.junction:
                if lane == arm.lanes - 1:
                    targets.append(("right", _rot(d_in, -math.pi / 2)))
                if lane == 0:
                    targets.append(("left", _rot(d_in, math.pi / 2)))
            for man, direction in targets:
                b_idx = _arm_towards(layout, direction)
                if b_idx is None:
                    continue
                b = layout.arms[b_idx]
                lane_out = min(lane, b.lanes - 1) if man == "straight" else (b.lanes - 1 if man == "right" else 0)
                p2 = layout.outbound(b, lane_out, r if layout.junction else r)
                end = layout.outbound(b, lane_out, ARM_LEN)
                if man == "straight":
                    mid = np.stack([p1, p2])
                else:
                    c = _line_intersection(p1, d_in, p2, -b.u)
                    mid = _bezier(p1, c, p2)
                poly = np.concatenate([start[None], mid, end[None]])
                pts, heading, cum = _resample(poly)
                s_in, s_out = float(cum[1]), float(cum[-2])
                jspan = (s_in, s_out) if layout.junction else None
                name = f"a{a_idx}l{lane}-{man}-a{b_idx}l{lane_out}"
                routes.append(Route(name, man, pts, heading, (s_in, s_out), jspan, lane_in=lane, lane_out=lane_out,
                                    lanes=arm.lanes, entry=a_idx))
                if man == "straight":
                    routes.append(Route(f"a{a_idx}l{lane}-stop-a{b_idx}l{lane_out}", "stop", pts, heading,
                                        (s_in - 1.0, s_in + 0.5), jspan, stop_at=s_in, lane_in=lane,
                                        lane_out=lane_out, lanes=arm.lanes, entry=a_idx))
            if not layout.junction:
                routes.extend(_lane_changes(layout, a_idx, lane))
    return routes


def _lane_changes(layout: Layout, a_idx: int, lane: int) -> list[Route]:
    arm = layout.arms[a_idx]
    b_idx = _arm_towards(layout, -arm.u)
    assert b_idx is not None
    out: list[Route] = []
    for lane_out in (lane - 1, lane + 1):
        if not 0 <= lane_out < arm.lanes:
            continue
        # Lateral offset blends over 30 m centred on the middle of the road stretch near the centre.
        xs = np.arange(-ARM_LEN, ARM_LEN + 1e-9, 1.0)
        o0 = (lane + 0.5) * LANE_W + layout.median / 2
        o1 = (lane_out + 0.5) * LANE_W + layout.median / 2
        t = np.clip((xs + 15.0) / 30.0, 0.0, 1.0)
        t = t * t * (3 - 2 * t)
        off = o0 + (o1 - o0) * t
        d = -arm.u
        poly = arm.u[None] * ARM_LEN + (xs[:, None] + ARM_LEN) * d[None] + off[:, None] * right_normal(d)[None]
        pts, heading, _ = _resample(poly)
        side = "left" if lane_out < lane else "right"
        out.append(Route(f"a{a_idx}l{lane}-lane_change-l{lane_out}", "lane_change", pts, heading,
                         (ARM_LEN - 15.0, ARM_LEN + 15.0), None, lane_in=lane, lane_out=lane_out,
                         lanes=arm.lanes, side=side, entry=a_idx))
    return out


@dataclass
class Camera:
    """A pinhole camera: world point ``X`` -> pixel via ``K R (X - C)``."""

    width: int
    height: int
    pos: np.ndarray  # (3,)
    rot: np.ndarray  # (3, 3): rows = camera right, down, forward in world coordinates
    f: float  # focal length, px
    extra: dict[str, float] = field(default_factory=dict)

    @classmethod
    def look_at(cls, width: int, height: int, pos: np.ndarray, target: np.ndarray, hfov_deg: float) -> Camera:
        fwd = target - pos
        fwd = fwd / np.linalg.norm(fwd)
        right = np.cross(fwd, np.array([0.0, 0.0, 1.0]))
        right = right / np.linalg.norm(right)
        down = np.cross(fwd, right)
        f = (width / 2) / math.tan(math.radians(hfov_deg) / 2)
        return cls(width, height, pos.astype(np.float64), np.stack([right, down, fwd]), f)

    def to_cam(self, pts: np.ndarray) -> np.ndarray:
        """World points (..., 3) -> camera coordinates (..., 3) (z = depth)."""
        return (pts - self.pos) @ self.rot.T

    def project(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (..., 3) -> pixels (..., 2) and depth (...). Depths <= 0 give meaningless pixels."""
        c = self.to_cam(pts)
        z = c[..., 2]
        zs = np.where(z > 1e-3, z, 1e-3)
        uv = np.stack([self.f * c[..., 0] / zs + self.width / 2, self.f * c[..., 1] / zs + self.height / 2], -1)
        return uv, z

    def ground_homography(self) -> np.ndarray:
        """3x3 homography from ground-plane (x, y, 1) to homogeneous pixels."""
        k = np.array([[self.f, 0, self.width / 2], [0, self.f, self.height / 2], [0, 0, 1.0]])
        rt = np.concatenate([self.rot, (-self.rot @ self.pos)[:, None]], axis=1)  # 3x4
        return k @ rt[:, [0, 1, 3]]

    def sky_mask(self) -> np.ndarray:
        """Pixels whose viewing ray does not hit the ground in front of the camera."""
        u, v = np.meshgrid(np.arange(self.width) + 0.5, np.arange(self.height) + 0.5)
        rays = np.stack([(u - self.width / 2) / self.f, (v - self.height / 2) / self.f, np.ones_like(u)], -1)
        world = rays @ self.rot  # camera -> world direction
        return world[..., 2] > -0.02

    def scaled(self, k: float) -> Camera:
        return Camera(int(round(self.width * k)), int(round(self.height * k)), self.pos, self.rot, self.f * k,
                      dict(self.extra))


def place_camera(layout: Layout, width: int, height: int, rng: np.random.Generator) -> Camera:
    """A pole camera looking at the layout's centre from a corner (junctions) or the roadside (road)."""
    if layout.junction:
        # Between two consecutive arms (a corner), 24-40 m away, 8-14 m high.
        angles = sorted(a.angle for a in layout.arms)
        k = int(rng.integers(len(angles)))
        a0, a1 = angles[k], angles[(k + 1) % len(angles)] + (2 * math.pi if k + 1 == len(angles) else 0)
        # A tee's open side: stand in its middle; else somewhere in the corner.
        phi = (a0 + a1) / 2 if a1 - a0 > math.pi * 1.01 else a0 + (a1 - a0) * float(rng.uniform(0.3, 0.7))
        dist = float(rng.uniform(24.0, 34.0))
        height_m = float(rng.uniform(16.0, 24.0))
        pos = np.array([dist * math.cos(phi), dist * math.sin(phi), height_m])
        target = np.array([*rng.uniform(-4.0, 4.0, 2), 0.0])
        hfov = float(rng.uniform(58.0, 70.0))
    else:
        arm = layout.arms[0]
        # Roadside pole 18-28 m before the crosswalk, looking at it (lane changes happen there too).
        side = 1.0 if rng.random() < 0.5 else -1.0
        along = (1.0 if rng.random() < 0.5 else -1.0) * float(rng.uniform(18.0, 28.0))
        lateral = side * float(rng.uniform(layout.half_width + 4.0, layout.half_width + 10.0))
        xy = arm.u * along + right_normal(arm.u) * lateral
        pos = np.array([xy[0], xy[1], float(rng.uniform(15.0, 21.0))])
        t_xy = arm.u * float(rng.uniform(-4.0, 4.0))
        target = np.array([t_xy[0], t_xy[1], 0.0])
        hfov = float(rng.uniform(58.0, 68.0))
    return Camera.look_at(width, height, pos, target, hfov)
