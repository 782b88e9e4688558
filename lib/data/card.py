"""The dataset card of notebook 00: counts per split and camera, sample frames with the target's box, a strip of one
track's crops, example sentences, and histograms of colour, vehicle type, manoeuvre, track length and box size --
beside the same histograms for the real CityFlow-NL annotations when they are available.

Attributes of a synthetic dataset come from its exact labels (``synthetic-labels.json``); attributes of real data
(or of a folder without labels) are parsed from the sentences with ``lib.text.attributes.parse_track``. Box sizes
are compared in pixels at 1080 lines (ours scaled by 1080 / frame height; the real cameras are mostly 1920x1080).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lib.cityflow import Layout, camera_of, frame_index, load_queries
from lib.frame_io import read_frame
from lib.io import read_json

REF_HEIGHT = 1080  # box sizes are compared at this frame height
ATTRS = ("colour", "type", "manoeuvre")


def _parse(sentences: list[str]) -> dict[str, str | None]:
    from lib.text.attributes import parse_track

    a = parse_track(sentences)
    manoeuvre = "lane_change" if a.lane_change else a.manoeuvre
    return {"colour": a.colour, "type": a.vehicle_type, "manoeuvre": manoeuvre}


def _frame_height(root: Path, info: dict[str, Any] | None, camera: str) -> int | None:
    if info is not None:
        return int(info["resolution"][1])
    video = root / camera / "vdo.avi"
    if video.exists():
        import cv2

        cap = cv2.VideoCapture(str(video))
        h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        cap.release()
        return h or None
    return None


def track_table(data_root: str | os.PathLike[str], train_file: str = "train-tracks.json",
                test_file: str = "test-tracks.json", queries_file: str = "test-queries.json",
                gt_file: str = "test-gt.json", frame_height: int | None = None) -> pd.DataFrame:
    """One row per track: uuid, split, camera, n_frames, median box width/height (pixels at 1080 lines), colour,
    type, manoeuvre and where the attributes come from (``labels`` or ``parsed``).

    Test tracks take their attributes from their query (through ``test-gt.json``) when there are no labels; without
    ground truth the queries are listed as rows of split ``query`` (attributes only)."""
    root = Layout.of(data_root).root
    info = read_json(root / "dataset.json") if (root / "dataset.json").exists() else None
    labels = read_json(root / "synthetic-labels.json") if (root / "synthetic-labels.json").exists() else None
    queries = load_queries(root / queries_file) if (root / queries_file).exists() else {}
    gt = read_json(root / gt_file) if (root / gt_file).exists() else {}
    query_of = {t: q for q, t in gt.items()}
    heights: dict[str, int | None] = {}
    rows: list[dict[str, Any]] = []
    for split, name in (("train", train_file), ("test", test_file)):
        path = root / name
        if not path.exists():
            continue
        for uid, tr in read_json(path).items():
            cam = camera_of(tr["frames"][0]) if tr.get("frames") else ""
            if cam not in heights:
                heights[cam] = frame_height or _frame_height(root, info, cam)
            scale = REF_HEIGHT / heights[cam] if heights[cam] else 1.0
            boxes = np.asarray(tr.get("boxes") or [[0, 0, 0, 0]], dtype=np.float64)
            row: dict[str, Any] = {"uuid": uid, "split": split, "camera": cam, "n_frames": len(tr.get("frames", [])),
                                   "box_w": float(np.median(boxes[:, 2]) * scale),
                                   "box_h": float(np.median(boxes[:, 3]) * scale)}
            if labels is not None and uid in labels:
                row.update({k: labels[uid][k] for k in ATTRS}, source="labels")
            elif split == "train" and tr.get("nl"):
                row.update(_parse(tr["nl"]), source="parsed")
            elif uid in query_of and query_of[uid] in queries:
                row.update(_parse(queries[query_of[uid]]), source="parsed")
            else:
                row.update(dict.fromkeys(ATTRS), source="none")
            rows.append(row)
    if not gt and labels is None:
        for qid, sents in queries.items():
            rows.append({"uuid": qid, "split": "query", "camera": "", "n_frames": np.nan, "box_w": np.nan,
                         "box_h": np.nan, **_parse(sents), "source": "parsed"})
    return pd.DataFrame(rows)


def counts_table(data_root: str | os.PathLike[str], tracks: pd.DataFrame | None = None) -> pd.DataFrame:
    """Tracks per camera and split (plus frames, layout and role for a synthetic dataset)."""
    root = Layout.of(data_root).root
    df = tracks if tracks is not None else track_table(root)
    df = df[df["split"].isin(["train", "test"])]
    table = df.pivot_table(index="camera", columns="split", values="uuid", aggfunc="count", fill_value=0)
    for col in ("train", "test"):
        if col not in table:
            table[col] = 0
    table = table[["train", "test"]].astype(int)
    info_path = root / "dataset.json"
    if info_path.exists():
        cams = read_json(info_path)["cameras"]
        table["frames"] = [cams.get(c, {}).get("n_frames", 0) for c in table.index]
        table["layout"] = [cams.get(c, {}).get("layout", "") for c in table.index]
        table["role"] = [cams.get(c, {}).get("role", "") for c in table.index]
    total = {c: (int(table[c].sum()) if c in ("train", "test", "frames") else "") for c in table.columns}
    table = pd.concat([table, pd.DataFrame([total], index=["total"])])
    table.index.name = "camera"
    return table


def _tracks(root: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in ("train-tracks.json", "test-tracks.json"):
        if (root / name).exists():
            out.update(read_json(root / name))
    return out


def plot_sample_frames(data_root: str | os.PathLike[str], n: int = 6, seed: int = 0,
                       tracks: pd.DataFrame | None = None):
    """``n`` frames of different cameras, each with one track's box drawn in yellow and its label as title."""
    import cv2
    import matplotlib.pyplot as plt

    root = Layout.of(data_root).root
    all_tracks = _tracks(root)
    df = tracks if tracks is not None else track_table(root)
    df = df[df["split"].isin(["train", "test"])]
    rng = np.random.default_rng(seed)
    picks = []
    for _, group in df.groupby("camera", sort=True):
        picks.append(group.iloc[int(rng.integers(len(group)))])
    n_cameras = len(picks)
    picks = [picks[i] for i in rng.permutation(len(picks))[:n]]
    cols = 2 if len(picks) == 4 else min(3, max(1, len(picks)))  # at most three a row, no row of one
    rows = int(np.ceil(len(picks) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.7 * rows + 0.4), squeeze=False,
                             constrained_layout=True)
    for ax in axes.flat:
        ax.axis("off")
    for ax, row in zip(axes.flat, picks):
        tr = all_tracks[row["uuid"]]
        k = len(tr["frames"]) // 2
        img = read_frame(root, tr["frames"][k], color="bgr")
        x, y, w, h = (int(v) for v in tr["boxes"][k])
        cv2.rectangle(img, (x, y), (x + w, y + h), (0, 255, 255), max(1, img.shape[0] // 180))
        ax.imshow(img[..., ::-1])
        ax.set_title(f"{row['camera']} ({row['split']})\n{row['colour']} {row['type']}, {row['manoeuvre']}",
                     fontsize=9)
    shown = "every camera" if len(picks) == n_cameras else f"{len(picks)} of the {n_cameras} cameras"
    fig.suptitle(f"{shown}, one random track each (box in yellow)", fontsize=10)
    return fig


def plot_track_strip(data_root: str | os.PathLike[str], uuid: str, n: int = 8, pad: float = 0.15):
    """``n`` crops evenly spaced along one track (the box grown by ``pad`` of its size on each side)."""
    import matplotlib.pyplot as plt

    from lib.crops import expand_crop

    root = Layout.of(data_root).root
    tr = _tracks(root)[uuid]
    idx = np.unique(np.linspace(0, len(tr["frames"]) - 1, n).round().astype(int))
    fig, axes = plt.subplots(1, len(idx), figsize=(1.9 * len(idx), 2.0), squeeze=False)
    for ax, k in zip(axes[0], idx):
        crop = expand_crop(read_frame(root, tr["frames"][k], color="bgr"), tr["boxes"][k], 1.0 + 2 * pad)
        ax.imshow(crop[..., ::-1])
        ax.set_title(f"#{frame_index(tr['frames'][k])}", fontsize=8)
        ax.axis("off")
    fig.suptitle(f"track {uuid[:8]}: {len(tr['frames'])} frames", fontsize=9)
    fig.tight_layout()
    return fig


def example_sentences(data_root: str | os.PathLike[str], n: int = 4, seed: int = 0) -> list[dict[str, Any]]:
    """A few training tracks' sentences and test queries (with the labels when the dataset is synthetic)."""
    root = Layout.of(data_root).root
    rng = np.random.default_rng(seed)
    labels = read_json(root / "synthetic-labels.json") if (root / "synthetic-labels.json").exists() else {}
    out: list[dict[str, Any]] = []
    train = read_json(root / "train-tracks.json") if (root / "train-tracks.json").exists() else {}
    keys = sorted(train)
    for i in rng.permutation(len(keys))[:n]:
        uid = keys[int(i)]
        lab = labels.get(uid, {})
        out.append({"split": "train", "id": uid, "sentences": train[uid]["nl"],
                    "truth": {k: lab[k] for k in ATTRS} if lab else None})
    queries = load_queries(root / "test-queries.json") if (root / "test-queries.json").exists() else {}
    gt = read_json(root / "test-gt.json") if (root / "test-gt.json").exists() else {}
    qkeys = sorted(queries)
    for i in rng.permutation(len(qkeys))[:n]:
        qid = qkeys[int(i)]
        lab = labels.get(gt.get(qid, ""), {})
        out.append({"split": "query", "id": qid, "sentences": queries[qid],
                    "truth": {k: lab[k] for k in ATTRS} if lab else None})
    return out


def real_track_table(annotations_dir: str | os.PathLike[str]) -> pd.DataFrame | None:
    """The real annotations (``val.json`` as training-style tracks, ``test-tracks.json``, ``test-queries.json``) as a
    track table with parsed attributes; None when the folder is absent. Frames are taken as 1080 lines high."""
    root = Path(annotations_dir)
    if not (root / "test-queries.json").exists():
        return None
    train_file = "val.json" if (root / "val.json").exists() else "train-tracks.json"
    return track_table(root, train_file=train_file, frame_height=REF_HEIGHT)


def histograms(ours: pd.DataFrame, real: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """Normalised frequencies of colour, type and manoeuvre (ours vs real, side by side columns), over the rows that
    have attributes (labels or parsed sentences; ``(none)`` = the sentences name none)."""
    out: dict[str, pd.DataFrame] = {}
    ours = ours[ours["source"] != "none"]
    real = real[real["source"] != "none"] if real is not None else None
    for attr in ATTRS:
        cols = {"ours": ours[attr].fillna("(none)").value_counts(normalize=True)}
        if real is not None:
            cols["real"] = real[attr].fillna("(none)").value_counts(normalize=True)
        out[attr] = pd.DataFrame(cols).fillna(0.0).sort_values("ours", ascending=False)
    return out


def plot_histograms(ours: pd.DataFrame, real: pd.DataFrame | None = None):
    """Five panels in two rows (at most three a row, to fit a notebook's width): colour, type, manoeuvre (share of
    tracks); track length and box height (1080-line pixels)."""
    import matplotlib.pyplot as plt

    fig, grid = plt.subplots(2, 3, figsize=(14, 8), constrained_layout=True)
    axes = grid.ravel()
    axes[5].axis("off")
    for ax, (attr, table) in zip(axes, histograms(ours, real).items()):
        table.plot.bar(ax=ax, width=0.8)
        ax.set_title(f"{attr} (share of tracks)")
        ax.tick_params(axis="x", labelrotation=60, labelsize=8)
    for ax, col, title, bins in ((axes[3], "n_frames", "track length (frames)", np.logspace(0, 3.1, 25)),
                                 (axes[4], "box_h", "median box height (px at 1080 lines)", np.linspace(0, 600, 25))):
        data = {"ours": ours[col].dropna()}
        if real is not None:
            data["real"] = real[col].dropna()
        for name, values in data.items():
            ax.hist(values, bins=bins, alpha=0.55, density=True, label=f"{name} (median {np.median(values):.0f})")
        if col == "n_frames":
            ax.set_xscale("log")
        ax.set_title(title)
        ax.legend(fontsize=8)
    return fig


def summary(ours: pd.DataFrame, real: pd.DataFrame | None = None) -> dict[str, Any]:
    """Numbers for the metrics record: counts and length/box statistics (ours, and real when given)."""
    def stats(df: pd.DataFrame) -> dict[str, Any]:
        tracks = df[df["split"].isin(["train", "test"])]
        return {"tracks": int(len(tracks)), "train": int((tracks["split"] == "train").sum()),
                "test": int((tracks["split"] == "test").sum()), "cameras": int(tracks["camera"].nunique()),
                "track_len_mean": round(float(tracks["n_frames"].mean()), 2),
                "track_len_median": float(tracks["n_frames"].median()),
                "track_len_max": int(tracks["n_frames"].max()),
                "box_h_median_1080": round(float(tracks["box_h"].median()), 1),
                "box_w_median_1080": round(float(tracks["box_w"].median()), 1)}

    out = {"ours": stats(ours)}
    if real is not None:
        out["real"] = stats(real)
    return out
