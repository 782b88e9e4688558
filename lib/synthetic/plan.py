"""What to render: track specifications (drawn from a preset, or given by the user) and the difficulty check.

Test tracks are drawn in blocks: one vehicle type, 3-4 colours x 3-4 manoeuvres, every cell once; extra tracks
repeat cells. So every test track has at least two others of its colour and type with another manoeuvre and at
least two of its type and manoeuvre with another colour, and no single cue ranks it first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lib.synthetic.vocab import BLOCK_MANOEUVRES, COLOURS, MANOEUVRES, TYPES
from lib.synthetic.world import CameraScene

TRAIN_MANOEUVRE_WEIGHTS = {"straight": 0.45, "left": 0.17, "right": 0.17, "stop": 0.13, "lane_change": 0.08}
SPLITS = ("train", "test")


@dataclass(frozen=True)
class TrackSpec:
    """One track to render: where, what and how it moves; optionally its sentences (else generated)."""

    camera: str  # "S01/c001"
    type: str
    colour: str
    manoeuvre: str
    split: str = "train"  # train | test
    sentences: tuple[str, ...] | None = None

    def check(self, i: int) -> None:
        problems = []
        if self.type not in TYPES:
            problems.append(f"type {self.type!r} (known: {sorted(TYPES)})")
        if self.colour not in COLOURS:
            problems.append(f"colour {self.colour!r} (known: {sorted(COLOURS)})")
        if self.manoeuvre not in MANOEUVRES:
            problems.append(f"manoeuvre {self.manoeuvre!r} (known: {list(MANOEUVRES)})")
        if self.split not in SPLITS:
            problems.append(f"split {self.split!r} (known: {list(SPLITS)})")
        if self.sentences is not None and (not self.sentences or not all(
                isinstance(s, str) and s.strip() for s in self.sentences)):
            problems.append("sentences: must be a non-empty list of non-empty strings")
        if problems:
            raise ValueError(f"track spec #{i} ({self.camera}): bad " + "; ".join(problems))


def _weighted(rng: np.random.Generator, weights: dict[str, float], allowed: Iterable[str] | None = None) -> str:
    names = [k for k in weights if allowed is None or k in set(allowed)]
    if not names:
        raise ValueError("nothing to choose from")
    p = np.array([weights[k] for k in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _colour_set(rng: np.random.Generator, k: int) -> list[str]:
    weights = {c.name: c.weight for c in COLOURS.values()}
    out: list[str] = []
    if rng.random() < 0.6:  # include a near pair (gray/silver, red/maroon, white/beige...)
        first = _weighted(rng, weights)
        near = COLOURS[first].near
        out = [first] + ([near] if near else [])
    while len(out) < k:
        c = _weighted(rng, {n: w for n, w in weights.items() if n not in out})
        out.append(c)
    return out[:k]


def _camera_for(rng: np.random.Generator, scenes: list[CameraScene], manoeuvre: str, vtype: str,
                prefer_role: str | None) -> CameraScene:
    ok = [s for s in scenes if manoeuvre in s.manoeuvres_for(vtype)]
    pref = [s for s in ok if prefer_role is None or s.scenario.role == prefer_role]
    pool = pref or ok
    if not pool:
        raise ValueError(f"no camera offers a {vtype} doing {manoeuvre!r}")
    return pool[int(rng.integers(len(pool)))]


def plan_specs(scenes: list[CameraScene], n_train: int, n_test: int, unseen_share: float,
               rng: np.random.Generator) -> list[TrackSpec]:
    """Track specifications of a preset: random training tracks and difficulty blocks for the test split."""
    train_cams = [s for s in scenes if s.scenario.role in ("train", "mixed")]
    test_cams = [s for s in scenes if s.scenario.role in ("test", "mixed")]
    if n_train and not train_cams:
        raise ValueError("the preset has no camera for training tracks (role train or mixed)")
    if n_test and not test_cams:
        raise ValueError("the preset has no camera for test tracks (role test or mixed)")
    type_w = {t.name: t.weight for t in TYPES.values()}
    colour_w = {c.name: c.weight for c in COLOURS.values()}
    specs: list[TrackSpec] = []
    for _ in range(n_train):
        cam = train_cams[int(rng.integers(len(train_cams)))]
        vtype = _weighted(rng, {t: w for t, w in type_w.items() if cam.manoeuvres_for(t)})
        man = _weighted(rng, TRAIN_MANOEUVRE_WEIGHTS, cam.manoeuvres_for(vtype))
        specs.append(TrackSpec(cam.name, vtype, _weighted(rng, colour_w), man, "train"))

    test_cells: list[tuple[str, str, str]] = []
    blocks: list[list[tuple[str, str, str]]] = []
    offered = {t: {m for s in test_cams for m in s.manoeuvres_for(t)} for t in TYPES}
    block_types = {t: w for t, w in type_w.items() if len(offered[t] & set(BLOCK_MANOEUVRES)) >= 3}
    remaining = n_test
    while remaining >= 9 and block_types:
        vtype = _weighted(rng, block_types)
        block_mans = [m for m in BLOCK_MANOEUVRES if m in offered[vtype]]
        shapes = [(r, c) for r in (3, 4) for c in (3, 4) if r * c <= remaining and c <= len(block_mans)]
        r, c = shapes[int(rng.integers(len(shapes)))]
        colours = _colour_set(rng, r)
        mans = [block_mans[i] for i in sorted(rng.choice(len(block_mans), size=c, replace=False))]
        block = [(vtype, col, man) for col in colours for man in mans]
        blocks.append(block)
        test_cells.extend(block)
        remaining -= r * c
    for _ in range(remaining):
        if blocks:  # repeat a cell of a block: the property still holds
            block = blocks[int(rng.integers(len(blocks)))]
            test_cells.append(block[int(rng.integers(len(block)))])
        else:  # too few test tracks for blocks
            vtype = _weighted(rng, {t: w for t, w in type_w.items() if offered[t]})
            man = _weighted(rng, TRAIN_MANOEUVRE_WEIGHTS, offered[vtype])
            test_cells.append((vtype, _weighted(rng, colour_w), man))
    for vtype, colour, man in test_cells:
        role = "test" if rng.random() < unseen_share else "mixed"
        cam = _camera_for(rng, test_cams, man, vtype, role)
        specs.append(TrackSpec(cam.name, vtype, colour, man, "test"))
    order = rng.permutation(len(specs))
    train = [specs[i] for i in order if specs[i].split == "train"]
    test = [specs[i] for i in order if specs[i].split == "test"]
    return train + test


def difficulty(labels: dict[str, dict[str, Any]], split: str = "test") -> dict[str, Any]:
    """For every track of ``split``: how many others share colour and type with another manoeuvre, and how many
    share type and manoeuvre with another colour; the minimum over tracks of each, and whether both are >= 2."""
    items = [(k, v) for k, v in labels.items() if v.get("split") == split]
    if not items:
        return {"n": 0, "satisfied": False, "min_same_colour_type_other_manoeuvre": 0,
                "min_same_type_manoeuvre_other_colour": 0}
    arr = np.array([(v["type"], v["colour"], v["manoeuvre"]) for _, v in items])
    t, c, m = arr[:, 0], arr[:, 1], arr[:, 2]
    a = ((t[:, None] == t[None]) & (c[:, None] == c[None]) & (m[:, None] != m[None])).sum(1)
    b = ((t[:, None] == t[None]) & (m[:, None] == m[None]) & (c[:, None] != c[None])).sum(1)
    return {"n": len(items), "satisfied": bool(a.min() >= 2 and b.min() >= 2),
            "min_same_colour_type_other_manoeuvre": int(a.min()), "min_same_type_manoeuvre_other_colour": int(b.min())}
