"""Low-poly 3D vehicles drawn with OpenCV polygons.

A model is a list of convex faces in vehicle coordinates (``x`` forward, ``y`` left, ``z`` up, metres): a body, a
cabin with inset windows, wheels with hubs, head and tail lights. Types differ in silhouette (cabin position and
slope, height, open pickup bed, cargo box, bus window band) and size. A trajectory's vertices are projected once for
all frames; drawing a frame is back-face culling, shading by the sun and painter's order by part.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from lib.synthetic.scene import Camera
from lib.synthetic.vocab import TYPES

GLASS = (52, 62, 74)  # RGB
TYRE = (24, 24, 26)
HUB = (128, 130, 134)
HEADLIGHT = (236, 232, 196)
TAILLIGHT = (190, 26, 24)


@dataclass
class Face:
    idx: list[int]
    role: str  # body | glass | tyre | hub | headlight | taillight | bed
    layer: int  # drawing layer: 0 body parts (sorted by depth), 1 parts on top, 2 details
    parent: int = -1  # details are drawn only when their parent face is visible (-1: own culling)
    cull: bool = True


@dataclass
class Model:
    vertices: list[list[float]] = field(default_factory=list)
    faces: list[Face] = field(default_factory=list)
    part_of: list[int] = field(default_factory=list)  # part id of each face (for painter's order)
    n_parts: int = 0

    def add_vertices(self, pts: list[list[float]]) -> list[int]:
        start = len(self.vertices)
        self.vertices.extend(pts)
        return list(range(start, start + len(pts)))

    def prism(self, bottom: tuple[float, float, float, float], z0: float, top: tuple[float, float, float, float],
              z1: float, layer: int, side_role: str = "body", top_role: str = "body",
              end_role: str | None = None) -> dict[str, int]:
        """A convex prism between rectangle ``bottom`` = (x0, x1, y0, y1) at z0 and ``top`` at z1."""
        bx0, bx1, by0, by1 = bottom
        tx0, tx1, ty0, ty1 = top
        v = self.add_vertices([[bx0, by0, z0], [bx1, by0, z0], [bx1, by1, z0], [bx0, by1, z0],
                               [tx0, ty0, z1], [tx1, ty0, z1], [tx1, ty1, z1], [tx0, ty1, z1]])
        part = self.n_parts
        self.n_parts += 1
        names = {"top": [v[4], v[5], v[6], v[7]], "front": [v[1], v[2], v[6], v[5]],
                 "back": [v[0], v[4], v[7], v[3]], "right": [v[0], v[1], v[5], v[4]],
                 "left": [v[3], v[7], v[6], v[2]]}
        out = {}
        for name, idx in names.items():
            role = top_role if name == "top" else (end_role or side_role) if name in ("front", "back") \
                else side_role
            out[name] = len(self.faces)
            self.faces.append(Face(idx, role, layer))
            self.part_of.append(part)
        return out

    def inset(self, parent: int, role: str, shrink: tuple[float, float] = (0.82, 0.75),
              offset: tuple[float, float] = (0.0, 0.0)) -> None:
        """A detail (window, bed) inside a quad face: the face shrunk towards its centre along its two axes."""
        quad = np.array([self.vertices[i] for i in self.faces[parent].idx])
        c = quad.mean(axis=0)
        a = (quad[1] - quad[0] + quad[2] - quad[3]) / 2  # first axis
        b = (quad[3] - quad[0] + quad[2] - quad[1]) / 2  # second axis
        pts = []
        for sa, sb in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            pts.append((c + a * (sa * shrink[0] / 2 + offset[0]) + b * (sb * shrink[1] / 2 + offset[1])).tolist())
        idx = self.add_vertices(pts)
        self.faces.append(Face(idx, role, 2, parent=parent))
        self.part_of.append(self.part_of[parent])

    def disc(self, x: float, y: float, z: float, r: float, role: str, parent: int, n: int = 10) -> None:
        """A wheel or hub: a polygon in the vehicle's side plane ``y``."""
        pts = [[x + r * math.cos(t), y, z + r * math.sin(t)] for t in np.linspace(0, 2 * math.pi, n, endpoint=False)]
        idx = self.add_vertices(pts)
        self.faces.append(Face(idx, role, 2, parent=parent))
        self.part_of.append(self.part_of[parent])

    def lights(self, face: int, x: float, w: float, z: tuple[float, float], role: str) -> None:
        for sign in (-1, 1):
            y0, y1 = sign * (w / 2 - 0.12), sign * (w / 2 - 0.42)
            idx = self.add_vertices([[x, y0, z[0]], [x, y1, z[0]], [x, y1, z[1]], [x, y0, z[1]]])
            self.faces.append(Face(idx, role, 2, parent=face))
            self.part_of.append(self.part_of[face])


def _car(length: float, width: float, body: tuple[float, float], cabin_bottom: tuple[float, float],
         cabin_top: tuple[float, float], roof: float, bed: bool = False) -> Model:
    m = Model()
    hl, hw = length / 2, width / 2
    z0, z1 = body
    b = m.prism((-hl, hl, -hw, hw), z0, (-hl, hl, -hw, hw), z1, layer=0)
    cb = (cabin_bottom[0] * hl, cabin_bottom[1] * hl, -hw + 0.05, hw - 0.05)
    ct = (cabin_top[0] * hl, cabin_top[1] * hl, -hw + 0.2, hw - 0.2)
    c = m.prism(cb, z1, ct, roof, layer=1)
    for name in ("front", "back", "left", "right"):
        m.inset(c[name], "glass", shrink=(0.84, 0.78), offset=(0.0, 0.0))
    if bed:
        bed_face_x0, bed_face_x1 = -hl + 0.15, cb[0] - 0.1
        idx = m.add_vertices([[bed_face_x0, -hw + 0.15, z1 + 0.002], [bed_face_x1, -hw + 0.15, z1 + 0.002],
                              [bed_face_x1, hw - 0.15, z1 + 0.002], [bed_face_x0, hw - 0.15, z1 + 0.002]])
        m.faces.append(Face(idx, "bed", 2, parent=b["top"]))
        m.part_of.append(m.part_of[b["top"]])
    _wheels_lights(m, b, length, width, z0, z1)
    return m


def _wheels_lights(m: Model, b: dict[str, int], length: float, width: float, z0: float, z1: float,
                   r: float = 0.34, axles: tuple[float, ...] | None = None) -> None:
    hl, hw = length / 2, width / 2
    axles = axles or (hl - 0.85, -hl + 0.9)
    for x in axles:
        for side, face in ((-1, b["right"]), (1, b["left"])):
            y = side * (hw + 0.01)
            m.disc(x, y, r, r, "tyre", face)
            m.disc(x, y + side * 0.005, r, r * 0.5, "hub", face, n=8)
    zl = (z0 + (z1 - z0) * 0.45, z0 + (z1 - z0) * 0.75)
    m.lights(b["front"], hl + 0.01, width, zl, "headlight")
    m.lights(b["back"], -hl - 0.01, width, zl, "taillight")


def _bus(length: float, width: float) -> Model:
    m = Model()
    hl, hw = length / 2, width / 2
    b = m.prism((-hl, hl, -hw, hw), 0.35, (-hl, hl, -hw, hw), 3.1, layer=0)
    for name, shrink, off in (("left", (0.9, 0.34), (0.0, 0.18)), ("right", (0.9, 0.34), (0.0, 0.18)),
                              ("front", (0.86, 0.42), (0.0, 0.17)), ("back", (0.8, 0.25), (0.0, 0.25))):
        m.inset(b[name], "glass", shrink=shrink, offset=off)
    _wheels_lights(m, b, length, width, 0.35, 1.2, r=0.5, axles=(hl - 2.4, -hl + 2.8))
    return m


def _box_truck(length: float, width: float) -> Model:
    m = Model()
    hl, hw = length / 2, width / 2
    cab_x0 = hl - 2.2
    box = m.prism((-hl, cab_x0 - 0.15, -hw, hw), 0.7, (-hl, cab_x0 - 0.15, -hw, hw), 3.5, layer=0)
    cab = m.prism((cab_x0, hl, -hw + 0.1, hw - 0.1), 0.5, (cab_x0, hl - 0.6, -hw + 0.15, hw - 0.15), 2.7, layer=0)
    m.inset(cab["front"], "glass", shrink=(0.8, 0.42), offset=(0.0, 0.22))
    for name in ("left", "right"):
        m.inset(cab[name], "glass", shrink=(0.5, 0.3), offset=(0.12, 0.25))
    for x in (hl - 1.1, -hl + 1.6, -hl + 2.8):
        for side, face in ((-1, cab["right"] if x > cab_x0 else box["right"]),
                           (1, cab["left"] if x > cab_x0 else box["left"])):
            y = side * (hw + 0.01)
            m.disc(x, y, 0.45, 0.45, "tyre", face)
            m.disc(x, y + side * 0.005, 0.45, 0.22, "hub", face, n=8)
    m.lights(cab["front"], hl + 0.01, width - 0.2, (0.7, 0.95), "headlight")
    m.lights(box["back"], -hl - 0.01, width, (0.8, 1.05), "taillight")
    return m


def build_model(vtype: str) -> Model:
    t = TYPES[vtype]
    length, width = t.length, t.width
    if vtype == "sedan":
        return _car(length, width, (0.3, 0.92), (-0.62, 0.34), (-0.42, 0.12), 1.45)
    if vtype == "hatchback":
        return _car(length, width, (0.3, 0.95), (-0.96, 0.3), (-0.9, 0.02), 1.52)
    if vtype == "suv":
        return _car(length, width, (0.42, 1.12), (-0.95, 0.36), (-0.92, 0.12), 1.82)
    if vtype == "van":
        return _car(length, width, (0.36, 1.02), (-0.98, 0.6), (-0.96, 0.38), 2.05)
    if vtype == "pickup":
        return _car(length, width, (0.48, 1.18), (-0.12, 0.5), (-0.1, 0.28), 1.92, bed=True)
    if vtype == "bus":
        return _bus(length, width)
    if vtype == "box_truck":
        return _box_truck(length, width)
    raise ValueError(f"unknown vehicle type {vtype!r}; known: {sorted(TYPES)}")


@dataclass
class CompiledModel:
    """A model as arrays: vertices (V, 3), faces as index lists with role, layer, parent and part."""

    vtype: str
    vertices: np.ndarray
    faces: list[Face]
    part_of: np.ndarray
    normals: np.ndarray  # (F, 3) outward normals in vehicle coordinates
    centroids: np.ndarray  # (F, 3)
    footprint: np.ndarray  # (4, 2) ground rectangle
    base_bgr: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # (F, 3) fixed colours by role
    role_body: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    role_bed: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    unshaded: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    main_faces: list[int] = field(default_factory=list)
    corners: np.ndarray = field(default_factory=lambda: np.zeros((8, 3)))  # 3D bounding box
    details_of: dict[int, list[int]] = field(default_factory=dict)

    @classmethod
    def of(cls, vtype: str) -> CompiledModel:
        m = build_model(vtype)
        v = np.asarray(m.vertices, dtype=np.float64)
        centre = v.mean(axis=0)
        normals, cents = [], []
        for f in m.faces:
            p = v[f.idx]
            c = p.mean(axis=0)
            n = np.cross(p[1] - p[0], p[2] - p[0])
            if np.linalg.norm(n) < 1e-9:
                n = np.cross(p[2] - p[0], p[3] - p[0])
            n = n / (np.linalg.norm(n) + 1e-12)
            if f.role in ("tyre", "hub"):
                n = np.array([0.0, math.copysign(1.0, c[1]), 0.0])
            elif f.parent < 0 and n @ (c - centre) < 0:
                n = -n
            normals.append(n)
            cents.append(c)
        faces = list(m.faces)
        for i, f in enumerate(faces):  # details take their parent's normal (drawn when the parent is visible)
            if f.parent >= 0 and f.role not in ("tyre", "hub"):
                normals[i] = normals[f.parent]
        t = TYPES[vtype]
        hl, hw = t.length / 2, t.width / 2
        foot = np.array([[hl, hw], [hl, -hw], [-hl, -hw], [-hl, hw]])
        fixed = {"glass": GLASS, "tyre": TYRE, "hub": HUB, "headlight": HEADLIGHT, "taillight": TAILLIGHT}
        base = np.array([fixed.get(f.role, (0, 0, 0))[::-1] for f in faces], dtype=np.float64)
        roles = np.array([f.role for f in faces])
        details: dict[int, list[int]] = {i: [] for i in range(len(faces))}
        for j, f in enumerate(faces):
            if f.layer == 2:
                details[f.parent].append(j)
        return cls(vtype, v, faces, np.asarray(m.part_of), np.asarray(normals), np.asarray(cents), foot, base,
                   roles == "body", roles == "bed", np.isin(roles, ["headlight", "taillight", "tyre", "hub"]),
                   main_faces=[i for i, f in enumerate(faces) if f.layer < 2], details_of=details,
                   corners=np.array([[x, y, z] for x in (v[:, 0].min(), v[:, 0].max())
                                     for y in (v[:, 1].min(), v[:, 1].max()) for z in (v[:, 2].min(), v[:, 2].max())]))


_MODELS: dict[str, CompiledModel] = {}


def model(vtype: str) -> CompiledModel:
    if vtype not in _MODELS:
        _MODELS[vtype] = CompiledModel.of(vtype)
    return _MODELS[vtype]


def _rotate(local: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """Local points (P, 3) -> world offsets (T, P, 3) for headings (T,)."""
    c, s = np.cos(heading)[:, None], np.sin(heading)[:, None]
    x, y, z = local[None, :, 0], local[None, :, 1], local[None, :, 2]
    return np.stack([c * x - s * y, s * x + c * y, np.broadcast_to(z, c.shape[:1] + z.shape[1:])], axis=-1)


@dataclass
class Projected:
    """A vehicle over its frames: pixels of every vertex, face visibility and shade, shadow polygon, box."""

    uv: np.ndarray  # (T, V, 2) float32
    min_depth: np.ndarray  # (T,)
    visible: np.ndarray  # (T, F) bool
    shade: np.ndarray  # (T, F) float32
    part_depth: np.ndarray  # (T, n_parts)
    shadow: np.ndarray  # (T, 4..8, 2) pixels of the shadow polygon
    bbox: np.ndarray  # (T, 4) x0, y0, x1, y1 (unclipped, float)
    hull_bbox: np.ndarray  # (T, 4) box of the projected 3D bounding box (decides annotatability)
    hull_depth: np.ndarray  # (T,) nearest depth of the 3D bounding box


def project_vehicle(cm: CompiledModel, pos: np.ndarray, heading: np.ndarray, cam: Camera,
                    sun: np.ndarray) -> Projected:
    """Project a vehicle at positions (T, 2) with headings (T,) through ``cam``; ``sun`` points to the sun."""
    t = len(pos)
    world = _rotate(cm.vertices, heading) + np.concatenate([pos, np.zeros((t, 1))], axis=1)[:, None, :]
    uv, depth = cam.project(world)
    normals = _rotate(cm.normals, heading)  # (T, F, 3)
    cents = _rotate(cm.centroids, heading) + np.concatenate([pos, np.zeros((t, 1))], axis=1)[:, None, :]
    to_cam = cam.pos[None, None, :] - cents
    facing = np.einsum("tfk,tfk->tf", normals, to_cam) > 0
    visible = facing.copy()
    for i, f in enumerate(cm.faces):
        if f.parent >= 0 and f.role not in ("tyre", "hub"):
            visible[:, i] = facing[:, f.parent]
    lam = np.clip(np.einsum("tfk,k->tf", normals, sun), 0.0, 1.0)
    shade = (0.55 + 0.55 * lam).astype(np.float32)
    cam_depth = cam.to_cam(cents)[..., 2]
    parts = cm.part_of
    part_depth = np.stack([cam_depth[:, parts == p].mean(axis=1) for p in range(int(parts.max()) + 1)], axis=1)
    # Shadow: the footprint and its copy pushed away from the sun, as one convex polygon on the ground.
    height = float(cm.vertices[:, 2].max())
    push = -sun[:2] / max(sun[2], 0.35) * height * 0.6
    foot = _rotate(np.concatenate([cm.footprint * 1.02, np.zeros((4, 1))], axis=1), heading)[..., :2] \
        + pos[:, None, :]
    pts = np.concatenate([foot, foot + push[None, None, :]], axis=1)  # (T, 8, 2)
    shadow_uv, _ = cam.project(np.concatenate([pts, np.zeros(pts.shape[:2] + (1,))], axis=-1))
    bbox = np.concatenate([uv.min(axis=1), uv.max(axis=1)], axis=1)
    hull_uv, hull_depth = project_corners(cm, pos, heading, cam)
    hull = np.concatenate([hull_uv.min(axis=1), hull_uv.max(axis=1)], axis=1)
    return Projected(uv.astype(np.float32), depth.min(axis=1), visible, shade, part_depth,
                     shadow_uv.astype(np.float32), bbox, hull, hull_depth.min(axis=1))


def project_corners(cm: CompiledModel, pos: np.ndarray, heading: np.ndarray, cam: Camera
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (T, 8, 2) and depths (T, 8) of the vehicle's 3D bounding box at positions (T, 2), headings (T,)."""
    world = _rotate(cm.corners, heading) + np.concatenate([pos, np.zeros((len(pos), 1))], axis=1)[:, None, :]
    return cam.project(world)


_SHIFT = 4
_SCALE = float(1 << _SHIFT)


def _poly(img: np.ndarray, pts: np.ndarray, colour: tuple[float, float, float]) -> None:
    p = np.clip(np.rint(pts * _SCALE), -2e6, 2e6).astype(np.int32)
    cv2.fillConvexPoly(img, p, colour, lineType=cv2.LINE_AA, shift=_SHIFT)


def draw_shadow(img: np.ndarray, proj: Projected, k: int, colour: tuple[float, float, float]) -> None:
    pts = proj.shadow[k]
    hull = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2)
    _poly(img, hull, colour)


def draw_vehicle(img: np.ndarray, cm: CompiledModel, proj: Projected, k: int, rgb: tuple[int, int, int],
                 light: np.ndarray) -> None:
    """Draw frame ``k`` of a projected vehicle onto a BGR image; ``light`` is the scene's BGR gain."""
    colours = _face_colours(cm, rgb, proj.shade[k], light).tolist()
    uvi = np.clip(np.rint(proj.uv[k] * _SCALE), -2e6, 2e6).astype(np.int32)
    vis = proj.visible[k]
    order_parts = np.argsort(-proj.part_depth[k], kind="stable")
    rank = np.empty_like(order_parts)
    rank[order_parts] = np.arange(len(order_parts))
    # Layer 0 parts far to near, then layer 1 (cabins on top); each face is followed by its details.
    main = sorted((i for i in cm.main_faces if vis[i]),
                  key=lambda i: (cm.faces[i].layer, int(rank[cm.part_of[i]]) if cm.faces[i].layer == 0 else 0))
    for i in main:
        cv2.fillConvexPoly(img, uvi[cm.faces[i].idx], colours[i], lineType=cv2.LINE_AA, shift=_SHIFT)
        for j in cm.details_of[i]:
            if vis[j]:
                cv2.fillConvexPoly(img, uvi[cm.faces[j].idx], colours[j], lineType=cv2.LINE_AA, shift=_SHIFT)


def _face_colours(cm: CompiledModel, rgb: tuple[int, int, int], shade: np.ndarray, light: np.ndarray) -> np.ndarray:
    """BGR colour of every face: its role's base colour, shaded (lights and tyres are not), times the light."""
    base = cm.base_bgr.copy()
    body = np.array(rgb[::-1], dtype=np.float64)
    base[cm.role_body] = body
    base[cm.role_bed] = body * 0.45
    s = np.where(cm.unshaded, 1.0, shade.astype(np.float64))
    return np.clip(base * s[:, None] * light[None, :], 0, 255)
