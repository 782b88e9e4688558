"""Vehicle motion along routes, collision-free scheduling in a camera, annotation windows and true context.

Speeds follow a simple kinematic model (cruise speed, lateral-acceleration limit in curves, braking to a stop line
and waiting). Vehicles are scheduled one after another in a camera's timeline at the earliest start that keeps a
safe distance to every vehicle already placed, so nothing drives through anything; platoons (a vehicle entering
right behind another in the same lane) make "following" and "followed by" happen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lib.synthetic.scene import STEP, Camera, Route
from lib.synthetic.vehicles import Projected
from lib.synthetic.vocab import TYPES

DT = 0.1  # seconds per frame (CityFlow videos are 10 fps)
A_ACC, A_BRAKE, A_LAT = 2.0, 3.0, 2.2


@dataclass
class Motion:
    route: Route
    vtype: str
    s: np.ndarray  # (T,) arc length of the vehicle centre per frame
    pos: np.ndarray  # (T, 2)
    heading: np.ndarray  # (T,)
    speed: np.ndarray  # (T,) m/s
    t0: int = 0  # camera frame (0-based) of the first sample
    stop_frames: tuple[int, int] | None = None  # local frame span of the stop (stop routes)

    @property
    def end(self) -> int:
        return self.t0 + len(self.s)

    @property
    def length(self) -> float:
        return TYPES[self.vtype].length

    @property
    def width(self) -> float:
        return TYPES[self.vtype].width


def _speed_limit(route: Route, cruise: float) -> np.ndarray:
    """Allowed speed along the route: cruise, slowed in curves, with braking ahead of them."""
    kappa = np.abs(np.gradient(route.heading, STEP))
    kappa = np.convolve(kappa, np.ones(9) / 9, mode="same")
    vmax = np.minimum(cruise, np.sqrt(A_LAT / np.maximum(kappa, 1e-4)))
    v = vmax.copy()
    for i in range(len(v) - 2, -1, -1):
        v[i] = min(v[i], math.sqrt(v[i + 1] ** 2 + 2 * A_BRAKE * 0.6 * STEP))
    return v


def simulate(route: Route, vtype: str, cruise: float, wait_frames: int = 0) -> Motion:
    """Drive ``route`` from its start to its end; stop routes stop at the line for ``wait_frames`` frames."""
    limit = _speed_limit(route, cruise)
    length = route.length
    half = TYPES[vtype].length / 2
    stop_s = None if route.stop_at is None else route.stop_at - half - 0.8
    s, v = 0.0, cruise
    ss, vs = [], []
    waited, stopped_at, released = 0, None, stop_s is None
    stop_span: list[int] = []
    while s < length:
        ss.append(s)
        vs.append(v)
        target = float(limit[min(len(limit) - 1, int(s / STEP))])
        if not released:
            assert stop_s is not None
            gap = stop_s - s
            target = min(target, math.sqrt(2 * A_BRAKE * 0.7 * max(gap, 0.0)))
            if gap < 0.6 and v < 0.3:
                v = 0.0
                if stopped_at is None:
                    stopped_at = len(ss) - 1
                waited += 1
                if waited >= wait_frames:
                    released = True
                    stop_span = [stopped_at, len(ss) - 1]
                continue
        v = min(max(target, v - A_BRAKE * DT), v + A_ACC * DT)
        s += v * DT
    s_arr = np.asarray(ss)
    idx = s_arr / STEP
    i0 = np.clip(np.floor(idx).astype(int), 0, len(route.pts) - 1)
    i1 = np.clip(i0 + 1, 0, len(route.pts) - 1)
    w = (idx - np.floor(idx))[:, None]
    pos = route.pts[i0] * (1 - w) + route.pts[i1] * w
    heading = route.heading[i0] * (1 - w[:, 0]) + route.heading[i1] * w[:, 0]
    return Motion(route, vtype, s_arr, pos, heading, np.asarray(vs),
                  stop_frames=tuple(stop_span) if stop_span else None)  # type: ignore[arg-type]


def _discs(m: Motion, frames: np.ndarray) -> np.ndarray:
    """Circles covering the vehicle footprint at the given local frames: centres (F, k, 2)."""
    n = max(2, int(math.ceil(m.length / m.width)) + 1)
    xs = np.linspace(-m.length / 2 + m.width / 2, m.length / 2 - m.width / 2, n)
    h = m.heading[frames]
    d = np.stack([np.cos(h), np.sin(h)], -1)
    return m.pos[frames][:, None, :] + xs[None, :, None] * d[:, None, :]


def conflicts(a: Motion, b: Motion, margin: float = 0.45) -> bool:
    """True when two scheduled vehicles would touch, or one would tailgate the other in a lane."""
    lo, hi = max(a.t0, b.t0), min(a.end, b.end)
    if lo >= hi:
        return False
    fa, fb = np.arange(lo, hi) - a.t0, np.arange(lo, hi) - b.t0
    d = b.pos[fb] - a.pos[fa]
    dist = np.linalg.norm(d, axis=1)
    near = dist < (a.length + b.length) / 2 + 12.0
    if not near.any():
        return False
    fa, fb, d, dist = fa[near], fb[near], d[near], dist[near]
    ha = a.heading[fa]
    along = d[:, 0] * np.cos(ha) + d[:, 1] * np.sin(ha)
    lateral = -d[:, 0] * np.sin(ha) + d[:, 1] * np.cos(ha)
    dh = np.abs((b.heading[fb] - ha + np.pi) % (2 * np.pi) - np.pi)
    same_lane = (np.abs(lateral) < 1.7) & (dh < 0.6)
    if same_lane.any():
        gap = np.abs(along[same_lane]) - (a.length + b.length) / 2
        v = np.maximum(a.speed[fa[same_lane]], b.speed[fb[same_lane]])
        if (gap < 1.6 + 0.55 * v).any():
            return True
    da, db = _discs(a, fa), _discs(b, fb)
    r = (a.width + b.width) / 2 + 2 * margin
    dd = np.linalg.norm(da[:, :, None, :] - db[:, None, :, :], axis=-1)
    return bool((dd < r).any())


@dataclass
class Placed:
    motions: list[Motion] = field(default_factory=list)

    def place(self, m: Motion, t_start: int, max_tries: int = 4000) -> int:
        t = max(0, t_start)
        for _ in range(max_tries):
            m.t0 = t
            if not any(conflicts(m, o) for o in self.motions if o.t0 < m.end and m.t0 < o.end):
                self.motions.append(m)
                return t
            t += 3
        raise RuntimeError(f"could not schedule a {m.vtype} on route {m.route.name} without collisions")


def box_visibility(bbox: np.ndarray, min_depth: np.ndarray, cam: Camera, min_h: float = 0.06, min_w: float = 0.04
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: whether a vehicle with unclipped boxes (T, 4: x0, y0, x1, y1) is annotatable (in front, >= 90% of
    its box inside the frame, box at least ``min_h`` of the frame height and ``min_w`` of its width: the real boxes'
    5th percentiles are about 0.09 and 0.06), and whether any of it is on screen (to draw it)."""
    x0, y0, x1, y1 = bbox.T
    area = np.maximum(x1 - x0, 1e-6) * np.maximum(y1 - y0, 1e-6)
    cx0, cy0 = np.clip(x0, 0, cam.width), np.clip(y0, 0, cam.height)
    cx1, cy1 = np.clip(x1, 0, cam.width), np.clip(y1, 0, cam.height)
    inside = np.maximum(cx1 - cx0, 0) * np.maximum(cy1 - cy0, 0) / area
    front = min_depth > 0.5
    ok = front & (inside >= 0.9) & ((y1 - y0) >= min_h * cam.height) & ((x1 - x0) >= min_w * cam.width)
    on_screen = front & (inside > 0)
    return ok, on_screen


def visibility(proj: Projected, cam: Camera) -> tuple[np.ndarray, np.ndarray]:
    """``box_visibility`` of a projected vehicle, judged on its 3D bounding box (as the route check does)."""
    return box_visibility(proj.hull_bbox, proj.hull_depth, cam)


def fill_gaps(mask: np.ndarray, max_gap: int) -> np.ndarray:
    """``mask`` with runs of at most ``max_gap`` False between two True set to True (brief dips below the size
    threshold do not end a track, as a tracker keeps a vehicle through them)."""
    out = mask.copy()
    idx = np.nonzero(mask)[0]
    for a, b in zip(idx[:-1], idx[1:]):
        if 1 < b - a <= max_gap + 1:
            out[a:b] = True
    return out


def longest_run(mask: np.ndarray, max_gap: int = 0) -> tuple[int, int] | None:
    """The longest run of True as (start, end) inclusive (gaps up to ``max_gap`` filled first), or None."""
    if max_gap:
        mask = fill_gaps(mask, max_gap)
    best, start = None, None
    for i, v in enumerate(np.append(mask, False)):
        if v and start is None:
            start = i
        elif not v and start is not None:
            if best is None or i - 1 - start > best[1] - best[0]:
                best = (start, i - 1)
            start = None
    return best


def key_frames(m: Motion) -> tuple[int, int] | None:
    """Local frames of the manoeuvre's key event (turn, lane change, stop) that the annotation must show."""
    man = m.route.manoeuvre
    if man == "stop":
        if m.stop_frames is None:
            return None
        return max(0, m.stop_frames[0] - 8), min(len(m.s) - 1, m.stop_frames[1] + 6)
    if man in ("left", "right", "lane_change"):
        k0, k1 = m.route.key
        inside = np.nonzero((m.s >= k0) & (m.s <= k1))[0]
        return (int(inside[0]), int(inside[-1])) if len(inside) else None
    return None


def choose_window(run: tuple[int, int], key: tuple[int, int] | None, target_len: int, rng: np.random.Generator,
                  need_key: bool, min_cover: float = 0.8) -> tuple[int, int] | None:
    """The annotated frames: a window of about ``target_len`` frames of the visible run that shows the key event."""
    a, b = run
    if key is not None:
        k0, k1 = max(a, key[0]), min(b, key[1])
        if need_key and (k1 < k0 or (k1 - k0 + 1) < min_cover * (key[1] - key[0] + 1)):
            return None
        lo, hi = k0, k1
    elif need_key:
        return None
    else:
        lo = hi = int(rng.integers(a, b + 1))
    length = max(target_len, hi - lo + 1)
    if length >= b - a + 1:
        return a, b
    s_min, s_max = max(a, hi - length + 1), min(lo, b - length + 1)
    start = int(rng.integers(s_min, s_max + 1)) if s_max >= s_min else max(a, min(lo, b - length + 1))
    return start, start + length - 1


def relations(me: Motion, others: list[Motion], frames: np.ndarray) -> dict[str, int | None]:
    """Indices (into ``others``) of the vehicle this one follows, is followed by, and drives next to, when the
    relation holds in at least 40% (and 3) of ``frames`` (camera frames)."""
    counts: dict[str, dict[int, int]] = {"following": {}, "followed_by": {}, "next_to": {}}
    for j, o in enumerate(others):
        if o is me:
            continue
        fr = frames[(frames >= o.t0) & (frames < o.end) & (frames >= me.t0) & (frames < me.end)]
        if len(fr) == 0:
            continue
        pa, pb = me.pos[fr - me.t0], o.pos[fr - o.t0]
        ha = me.heading[fr - me.t0]
        d = pb - pa
        along = d[:, 0] * np.cos(ha) + d[:, 1] * np.sin(ha)
        lateral = -d[:, 0] * np.sin(ha) + d[:, 1] * np.cos(ha)
        dh = np.abs((o.heading[fr - o.t0] - ha + np.pi) % (2 * np.pi) - np.pi)
        same = (dh < 0.5) & (np.abs(lateral) < 1.6)
        reach = (me.length + o.length) / 2 + 22.0
        n_ahead = int((same & (along > 0) & (along < reach)).sum())
        n_behind = int((same & (along < 0) & (along > -reach)).sum())
        n_next = int(((dh < 0.4) & (np.abs(lateral) > 2.4) & (np.abs(lateral) < 4.6) & (np.abs(along) < 5.0)).sum())
        for name, n in (("following", n_ahead), ("followed_by", n_behind), ("next_to", n_next)):
            if n:
                counts[name][j] = n
    out: dict[str, int | None] = {}
    need = max(3, int(math.ceil(0.4 * len(frames))))
    for name, c in counts.items():
        best = max(c.items(), key=lambda kv: (kv[1], -kv[0]), default=None)
        out[name] = best[0] if best is not None and best[1] >= need else None
    return out


def in_span(m: Motion, frames: np.ndarray, span: tuple[float, float] | None) -> bool:
    """Whether the vehicle is inside an arc-length span (e.g. the junction) during some of ``frames``."""
    if span is None:
        return False
    s = m.s[frames - m.t0]
    return bool(((s >= span[0] - m.length / 2) & (s <= span[1] + m.length / 2)).any())
