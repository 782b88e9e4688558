"""A camera's static background: the ground (roads, markings, sidewalks, grass) seen through the camera, the sky,
buildings and trees, and the scene's light.

The ground is painted top-down on a raster in world coordinates and warped into the image with the camera's ground
homography; everything is rendered at twice the resolution and downsampled (anti-aliasing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from lib.synthetic.scene import ARM_LEN, LANE_W, Camera, Layout, right_normal

EXTENT = ARM_LEN + 6.0  # the ground raster covers [-EXTENT, EXTENT]^2 metres


@dataclass(frozen=True)
class Style:
    """The look of one scenario: surface colours (RGB) and the light."""

    asphalt: tuple[int, int, int]
    grass: tuple[int, int, int]
    concrete: tuple[int, int, int]
    sky: tuple[int, int, int]
    facades: tuple[tuple[int, int, int], ...]
    light: tuple[float, float, float]  # RGB gain of the scene's light
    sun: tuple[float, float, float]  # unit vector towards the sun

    @property
    def light_bgr(self) -> np.ndarray:
        return np.array(self.light[::-1])

    @property
    def sun_vec(self) -> np.ndarray:
        return np.asarray(self.sun, dtype=np.float64)


def make_style(rng: np.random.Generator) -> Style:
    a = int(rng.integers(68, 104))
    asphalt = (a, a + int(rng.integers(0, 4)), a + int(rng.integers(2, 8)))
    g = rng.uniform(0.0, 1.0)
    grass = (int(70 + 60 * g), int(108 + 25 * (1 - g)), int(50 + 20 * g))  # green to dry brown
    c = int(rng.integers(150, 184))
    concrete = (c, c - 2, c - 6)
    sky_b = int(rng.integers(190, 236))
    sky = (int(sky_b * 0.78), int(sky_b * 0.86), sky_b)
    facades = tuple(tuple(int(v) for v in rng.choice(np.array(
        [[150, 84, 64], [196, 186, 166], [120, 120, 124], [170, 150, 120], [92, 96, 110], [210, 204, 190]]))) for _ in
        range(4))
    warm = float(rng.uniform(-0.06, 0.06))
    level = float(rng.uniform(0.82, 1.1))
    light = (level * (1 + warm), level, level * (1 - warm))
    az = float(rng.uniform(0, 2 * math.pi))
    el = float(rng.uniform(0.5, 1.2))
    sun = (math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el))
    return Style(asphalt, grass, concrete, sky, facades, light, sun)


class _Raster:
    """World (x, y) metres <-> raster pixels, for drawing the ground top-down."""

    def __init__(self, res: float):
        self.res = res
        self.n = int(math.ceil(2 * EXTENT / res))
        self.shift = 3
        self.k = float(1 << self.shift)

    def px(self, pts: np.ndarray) -> np.ndarray:
        pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        col = (pts[:, 0] + EXTENT) / self.res - 0.5
        row = (EXTENT - pts[:, 1]) / self.res - 0.5
        return np.rint(np.stack([col, row], 1) * self.k).astype(np.int32)

    def world_to_raster(self) -> np.ndarray:
        return np.array([[1 / self.res, 0, EXTENT / self.res - 0.5], [0, -1 / self.res, EXTENT / self.res - 0.5],
                         [0, 0, 1.0]])

    def poly(self, img: np.ndarray, pts: np.ndarray, colour: tuple[int, ...]) -> None:
        cv2.fillPoly(img, [self.px(pts)], colour, lineType=cv2.LINE_AA, shift=self.shift)

    def line(self, img: np.ndarray, p: np.ndarray, q: np.ndarray, width_m: float, colour: tuple[int, ...]) -> None:
        d = q - p
        d = d / (np.linalg.norm(d) + 1e-12)
        n = right_normal(d) * width_m / 2
        self.poly(img, np.stack([p + n, q + n, q - n, p - n]), colour)


def _noise(rng: np.random.Generator, n: int, scale: int, amp: float) -> np.ndarray:
    small = rng.normal(0.0, 1.0, (max(2, n // scale), max(2, n // scale))).astype(np.float32)
    return cv2.resize(small, (n, n), interpolation=cv2.INTER_CUBIC) * amp


def _rect(arm_u: np.ndarray, s0: float, s1: float, half: float) -> np.ndarray:
    n = right_normal(arm_u)
    return np.stack([arm_u * s0 + n * half, arm_u * s1 + n * half, arm_u * s1 - n * half, arm_u * s0 - n * half])


def paint_ground(layout: Layout, style: Style, res: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The ground raster (RGB uint8) and a road mask (uint8, 255 on asphalt)."""
    r = _Raster(res)
    n = r.n
    img = np.empty((n, n, 3), np.float32)
    img[:] = style.grass
    img += _noise(rng, n, 24, 9.0)[..., None] + _noise(rng, n, 4, 4.0)[..., None]
    img = np.clip(img, 0, 255).astype(np.uint8)
    mask = np.zeros((n, n), np.uint8)
    hw = layout.half_width
    side = 3.2  # sidewalk width
    for arm in layout.arms:
        r.poly(img, _rect(arm.u, 0.0, EXTENT * 1.5, hw + side), style.concrete)
    if layout.junction:
        corner = hw + side
        pts = np.array([[corner * math.cos(t), corner * math.sin(t)] for t in np.linspace(0, 2 * math.pi, 32)])
        r.poly(img, pts, style.concrete)
    road = np.zeros_like(img)
    for arm in layout.arms:
        r.poly(road, _rect(arm.u, 0.0, EXTENT * 1.5, hw), (255, 255, 255))
        r.poly(mask, _rect(arm.u, 0.0, EXTENT * 1.5, hw), (255,))
    if layout.junction:
        rad = hw * 1.12
        pts = np.array([[rad * math.cos(t), rad * math.sin(t)] for t in np.linspace(0, 2 * math.pi, 40)])
        r.poly(road, pts, (255, 255, 255))
        r.poly(mask, pts, (255,))
    asphalt = np.empty_like(img, dtype=np.float32)
    asphalt[:] = style.asphalt
    asphalt += _noise(rng, n, 6, 5.0)[..., None] + _noise(rng, n, 40, 6.0)[..., None]
    alpha = road[..., :1].astype(np.float32) / 255.0
    img = np.clip(img * (1 - alpha) + asphalt * alpha, 0, 255).astype(np.uint8)
    white, yellow = (228, 228, 222), (222, 184, 52)
    stop = layout.stop_dist
    for arm in layout.arms:
        u = arm.u
        start = stop if layout.junction else stop
        # centre: a median strip or a double yellow line
        if layout.median > 1.0:
            r.poly(img, _rect(u, start + 1.0, EXTENT * 1.5, layout.median / 2), style.concrete)
        else:
            for off in (-0.18, 0.18):
                nn = right_normal(u) * off
                r.line(img, u * start + nn, u * EXTENT * 1.5 + nn, 0.12, yellow)
        for d, sgn in ((u, 1.0), (-u, -1.0)):  # outbound (right of u) and inbound (right of -u) lanes
            nrm = right_normal(d)
            for lane in range(1, arm.lanes):
                off = lane * LANE_W + layout.median / 2
                s = start + 2.0
                while s < EXTENT * 1.4:
                    p, q = u * s + nrm * off, u * (s + 3.0) + nrm * off
                    r.line(img, p, q, 0.14, white)
                    s += 9.0
            _ = sgn
        inb = right_normal(-u)
        if layout.junction:
            # stop line across the inbound lanes, crosswalk between it and the junction
            a = u * stop + inb * (layout.median / 2)
            b = u * stop + inb * hw
            r.line(img, a, b, 0.45, white)
            for k in np.arange(-hw + 0.4, hw - 0.2, 1.2):
                c0 = u * (hw + 0.6) + right_normal(u) * k
                c1 = u * (stop - 0.6) + right_normal(u) * k
                r.line(img, c0, c1, 0.55, white)
        else:
            a = u * stop + inb * (layout.median / 2)
            b = u * stop + inb * hw
            r.line(img, a, b, 0.45, white)
    if not layout.junction:
        u = layout.arms[0].u
        for k in np.arange(-hw + 0.4, hw - 0.2, 1.2):
            nn = right_normal(u) * k
            r.line(img, -u * 2.2 + nn, u * 2.2 + nn, 0.55, white)
    # a few darker patches (stains, repairs) on the asphalt
    for _ in range(int(rng.integers(4, 9))):
        arm = layout.arms[int(rng.integers(len(layout.arms)))]
        c = arm.u * rng.uniform(5, ARM_LEN) + right_normal(arm.u) * rng.uniform(-hw, hw)
        rad = rng.uniform(0.6, 2.0)
        pts = c + np.array([[rad * math.cos(t), 0.6 * rad * math.sin(t)] for t in np.linspace(0, 2 * math.pi, 16)])
        dark = tuple(int(v * 0.82) for v in style.asphalt)
        r.poly(img, pts, dark)
    return img, mask


@dataclass
class Prop:
    """A building (box) or a tree (trunk + crown) standing on the ground."""

    kind: str
    xy: np.ndarray  # centre
    size: tuple[float, float, float]  # building: half-length, half-width, height; tree: crown radius, height, 0
    angle: float
    colour: tuple[int, int, int]


def make_props(layout: Layout, style: Style, rng: np.random.Generator) -> list[Prop]:
    props: list[Prop] = []
    hw = layout.half_width
    angles = sorted(a.angle for a in layout.arms)
    if layout.junction:
        gaps = [(angles[k], angles[(k + 1) % len(angles)] + (2 * math.pi if k + 1 == len(angles) else 0))
                for k in range(len(angles))]
    else:
        gaps = [(angles[0], angles[0] + math.pi), (angles[0] + math.pi, angles[0] + 2 * math.pi)]
    for a0, a1 in gaps:
        for _ in range(int(rng.integers(2, 5))):
            phi = a0 + (a1 - a0) * float(rng.uniform(0.2, 0.8))
            dist = float(rng.uniform(hw + 18.0, 60.0))
            xy = np.array([dist * math.cos(phi), dist * math.sin(phi)])
            size = (float(rng.uniform(5, 12)), float(rng.uniform(4, 9)), float(rng.uniform(6, 22)))
            if _clear_of_roads(layout, xy, max(size[0], size[1]) + 4.0):
                props.append(Prop("building", xy, size, float(a0 + rng.uniform(-0.2, 0.2)),
                                  style.facades[int(rng.integers(len(style.facades)))]))
    for arm in layout.arms:
        for sgn in (-1.0, 1.0):
            s = float(rng.uniform(hw + 6.0, hw + 12.0))
            while s < ARM_LEN:
                xy = arm.u * s + right_normal(arm.u) * sgn * (hw + 4.6)
                if _clear_of_roads(layout, xy, 1.5):
                    props.append(Prop("tree", xy, (float(rng.uniform(1.8, 3.0)), float(rng.uniform(4.0, 7.0)), 0.0),
                                      0.0, (int(rng.integers(40, 70)), int(rng.integers(90, 130)),
                                            int(rng.integers(40, 60)))))
                s += float(rng.uniform(9.0, 18.0))
    return props


def _clear_of_roads(layout: Layout, xy: np.ndarray, radius: float) -> bool:
    for arm in layout.arms:
        along = float(xy @ arm.u)
        across = abs(float(xy @ right_normal(arm.u)))
        if along > -radius and across < layout.half_width + 3.5 + radius:
            return False
    return float(np.linalg.norm(xy)) > layout.half_width + 4.0 + radius


def _draw_building(img: np.ndarray, cam: Camera, p: Prop, light: np.ndarray, sun: np.ndarray) -> None:
    hl, hwid, h = p.size
    c, s = math.cos(p.angle), math.sin(p.angle)
    corners = np.array([[hl, hwid], [-hl, hwid], [-hl, -hwid], [hl, -hwid]]) @ np.array([[c, s], [-s, c]]) + p.xy
    bottom = np.concatenate([corners, np.zeros((4, 1))], 1)
    top = np.concatenate([corners, np.full((4, 1), h)], 1)
    centre = np.array([*p.xy, h / 2])
    faces = [np.stack([bottom[i], bottom[(i + 1) % 4], top[(i + 1) % 4], top[i]]) for i in range(4)] + [top]
    drawn = []
    for f in faces:
        cen = f.mean(0)
        nrm = np.cross(f[1] - f[0], f[2] - f[0])
        nrm /= np.linalg.norm(nrm) + 1e-12
        if nrm @ (cen - centre) < 0:
            nrm = -nrm
        if nrm @ (cam.pos - cen) <= 0:
            continue
        drawn.append((float(cam.to_cam(cen[None])[0, 2]), f, nrm))
    for _, f, nrm in sorted(drawn, key=lambda t: -t[0]):
        shade = 0.6 + 0.45 * max(0.0, float(nrm @ sun))
        col = np.clip(np.array(p.colour[::-1]) * shade * light, 0, 255)
        uv, _ = cam.project(f)
        _fill(img, uv, col)
        if abs(nrm[2]) < 0.5:  # facade: rows of windows
            rows = max(1, int(h / 3.2))
            for k in range(rows):
                z0, z1 = (k + 0.35) / rows, (k + 0.75) / rows
                w0, w1 = f[0] + (f[3] - f[0]) * z0, f[1] + (f[2] - f[1]) * z0
                w2, w3 = f[1] + (f[2] - f[1]) * z1, f[0] + (f[3] - f[0]) * z1
                quad = np.stack([w0 + (w1 - w0) * 0.08, w1 + (w0 - w1) * 0.08, w2 + (w3 - w2) * 0.08,
                                 w3 + (w2 - w3) * 0.08])
                uvq, _ = cam.project(quad)
                _fill(img, uvq, np.clip(np.array([70, 64, 58]) * shade * light, 0, 255))


def _draw_tree(img: np.ndarray, cam: Camera, p: Prop, light: np.ndarray) -> None:
    r, h, _ = p.size
    base = np.array([*p.xy, 0.0])
    crown = np.array([*p.xy, h])
    (b_uv, c_uv), _ = cam.project(np.stack([base, crown]))
    depth = float(cam.to_cam(crown[None])[0, 2])
    rad_px = cam.f * r / max(depth, 1e-3)
    trunk_w = max(1, int(round(cam.f * 0.25 / max(depth, 1e-3))))
    trunk = np.clip(np.array([40, 60, 80]) * light, 0, 255)
    k = 16.0
    cv2.line(img, tuple(int(v * k) for v in b_uv), tuple(int(v * k) for v in c_uv), tuple(float(v) for v in trunk),
             trunk_w, cv2.LINE_AA, 4)
    col = np.clip(np.array(p.colour[::-1]) * light, 0, 255)
    cv2.circle(img, tuple(int(v * k) for v in c_uv), int(rad_px * k), tuple(float(v) for v in col), -1,
               cv2.LINE_AA, 4)
    dark = np.clip(col * 0.75, 0, 255)
    off = np.array([rad_px * 0.3, rad_px * 0.25])
    cv2.circle(img, tuple(int(v * k) for v in (c_uv + off)), int(rad_px * 0.55 * k), tuple(float(v) for v in dark),
               -1, cv2.LINE_AA, 4)


def _fill(img: np.ndarray, uv: np.ndarray, bgr: np.ndarray) -> None:
    p = np.clip(np.rint(uv * 16.0), -2e6, 2e6).astype(np.int32)
    cv2.fillConvexPoly(img, p, tuple(float(v) for v in bgr), lineType=cv2.LINE_AA, shift=4)


def render_background(layout: Layout, style: Style, props: list[Prop], cam: Camera, ground: np.ndarray,
                      road_mask: np.ndarray, res: float) -> tuple[np.ndarray, np.ndarray]:
    """The camera's empty frame (BGR uint8) and the road mask in image space (bool)."""
    ss = 2.0
    big = cam.scaled(ss)
    h_img = big.ground_homography() @ np.linalg.inv(_Raster(res).world_to_raster())
    g_bgr = np.ascontiguousarray(ground[..., ::-1])
    border = tuple(int(v) for v in style.grass[::-1])
    img = cv2.warpPerspective(g_bgr, h_img, (big.width, big.height), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=border)
    road = cv2.warpPerspective(road_mask, h_img, (big.width, big.height), flags=cv2.INTER_NEAREST,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    img = np.clip(img.astype(np.float32) * np.asarray(style.light[::-1], np.float32), 0, 255).astype(np.uint8)
    sky = big.sky_mask()
    rows = np.linspace(1.0, 0.8, big.height, dtype=np.float32)[:, None, None]
    sky_img = np.clip(np.array(style.sky[::-1], np.float32)[None, None] * rows, 0, 255)
    img = np.where(sky[..., None], np.broadcast_to(sky_img, img.shape).astype(np.uint8), img)
    road[sky] = 0
    # Haze towards the horizon.
    light = style.light_bgr
    sun = style.sun_vec
    drawable = []
    road_px = max(1, int((road > 0).sum()))
    for p in props:
        depth = float(big.to_cam(np.array([[*p.xy, 0.0]]))[0, 2])
        if depth < 3.0:
            continue
        probe = np.zeros_like(road)
        if p.kind == "building":
            _draw_building(probe, big, p, np.ones(3), sun)
        else:
            _draw_tree(probe, big, p, np.ones(3))
        if int(((probe > 0) & (road > 0)).sum()) > 0.01 * road_px:
            continue  # it would hide the road: leave it out of this view
        drawable.append((depth, p))
    for _, p in sorted(drawable, key=lambda t: -t[0]):
        if p.kind == "building":
            _draw_building(img, big, p, light, sun)
        else:
            _draw_tree(img, big, p, light)
    out = cv2.resize(img, (cam.width, cam.height), interpolation=cv2.INTER_AREA)
    road_small = cv2.resize(road, (cam.width, cam.height), interpolation=cv2.INTER_NEAREST) > 0
    return out, road_small
