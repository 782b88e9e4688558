"""Generate a synthetic CityFlow-NL dataset in the real layout.

``generate(preset, seed, out, specs=None, **overrides)`` writes, into a temporary folder beside ``out`` that is renamed
into place at the end (nothing half-written):

- ``{train,validation}/Sxx/cyyy/vdo.avi`` -- one MJPG video per camera; frame ``k`` (1-based) of the video is what
  ``img1/%06d.jpg`` ``k`` holds once frames are extracted;
- ``train-tracks.json``, ``test-tracks.json``, ``test-queries.json``, ``test-gt.json`` as CityFlow-NL 2021;
- ``synthetic-labels.json`` -- the exact truth per track (colour, type, manoeuvre, camera, split, context, the query
  of a test track, noise and test-only wording per sentence);
- ``dataset.json`` -- preset, seed, resolved settings, counts, per-camera frames, difficulty, generator version.

Same preset, seed and overrides give byte-identical JSON and identical decoded frames.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import shutil
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lib.io import read_json, write_json
from lib.progress import progress_bar
from lib.synthetic.plan import TrackSpec, difficulty, plan_specs
from lib.synthetic.presets import Settings, resolve
from lib.synthetic.render import CameraJob, VehicleJob, run_camera
from lib.synthetic.sentences import describe
from lib.synthetic.vocab import COLOURS, TYPES
from lib.synthetic.world import build_camera, camera_index_of, rng_for

if TYPE_CHECKING:
    from lib.cityflow import ValidationReport

GENERATOR_VERSION = "1.1"  # bump whenever the output for a given preset and seed changes


def _uuids(rng: np.random.Generator, n: int) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        hi, lo = (int(v) for v in rng.integers(0, 2 ** 63, size=2, dtype=np.int64))
        u = str(uuid.UUID(int=(hi << 64) | lo, version=4))
        if u not in seen:
            seen.add(u)
            out.append(u)
    return out


def _jsonable(obj: Any) -> Any:
    """Overrides as plain JSON values (dataclasses such as ScenarioSpec to dicts, tuples to lists)."""
    import dataclasses
    import json

    def conv(o: Any) -> Any:
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return conv(dataclasses.asdict(o))
        if isinstance(o, dict):
            return {str(k): conv(v) for k, v in o.items()}
        if isinstance(o, list | tuple):
            return [conv(v) for v in o]
        return o

    return json.loads(json.dumps(conv(obj)))


def _workers(settings: Settings, n_jobs: int) -> int:
    if settings.workers > 0:
        return min(settings.workers, max(1, n_jobs))
    return max(1, min(os.cpu_count() or 1, n_jobs, 4))


def _run_jobs(jobs: list[CameraJob], workers: int, progress: bool) -> list[dict[str, Any]]:
    bar = progress_bar(total=len(jobs), desc="cameras", unit="cam", disable=not progress)
    results: list[dict[str, Any]] = [{} for _ in jobs]
    try:
        if workers <= 1:
            for i, job in enumerate(jobs):
                results[i] = run_camera(job)
                bar.update()
        else:
            # Largest cameras first so that the pool stays busy.
            order = sorted(range(len(jobs)), key=lambda i: -len(jobs[i].vehicles))
            with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
                futs = {pool.submit(run_camera, jobs[i]): i for i in order}
                for fut in cf.as_completed(futs):
                    results[futs[fut]] = fut.result()
                    bar.update()
    finally:
        bar.close()
    return results


def _remove_stale_partials(out: Path) -> None:
    """Delete ``.NAME.partial-PID`` folders beside ``out`` left by a generation that was killed (its PID is gone)."""
    if not out.parent.is_dir():
        return
    for p in out.parent.glob(f".{out.name}.partial-*"):
        try:
            pid = int(p.name.rsplit("-", 1)[1])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(p, ignore_errors=True)
        except (ValueError, PermissionError, OSError):
            continue


def _place(tmp: Path, out: Path, overwrite: bool) -> None:
    if out.exists():
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        elif overwrite:
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
            return
        else:
            raise FileExistsError(f"{out}: already exists and is not empty (pass overwrite=True / --overwrite)")
    os.replace(tmp, out)


def generate(preset: str = "tiny", seed: int = 0, out: str | os.PathLike[str] | None = None,
             specs: list[TrackSpec] | None = None, *, overwrite: bool = False, progress: bool = True,
             **overrides: Any) -> dict[str, Any]:
    """Generate a dataset; return a report (paths, counts, timings, difficulty, validation warnings).

    ``specs`` renders exactly these tracks (controlled datasets) on the preset's cameras instead of the preset's
    random plan; ``overrides`` change any preset setting (``n_train``, ``width``, ``workers``, ...).
    """
    return _generate_validated(preset, seed, out, specs, overwrite=overwrite, progress=progress, **overrides)[0]


def _generate_validated(preset: str, seed: int, out: str | os.PathLike[str] | None, specs: list[TrackSpec] | None,
                        *, overwrite: bool, progress: bool, **overrides: Any
                        ) -> tuple[dict[str, Any], ValidationReport]:
    """:func:`generate`, and the frame-checked validation of the folder it placed (made before placing it)."""
    from lib.cityflow import validate_dataset
    from lib.paths import data_dir

    t_start = time.perf_counter()
    settings = resolve(preset, **overrides)
    out_path = Path(out) if out is not None else data_dir(preset)
    out_path = out_path.expanduser().resolve()
    if out_path.exists() and not overwrite and out_path.is_dir() and any(out_path.iterdir()):
        raise FileExistsError(f"{out_path}: already exists and is not empty (pass overwrite=True / --overwrite)")
    timings: dict[str, float] = {}

    t = time.perf_counter()
    scenes = [build_camera(settings, seed, i) for i in range(len(settings.cameras()))]
    by_name = {s.name: s for s in scenes}
    plan_rng = rng_for(seed, 4)
    if specs is None:
        specs = plan_specs(scenes, settings.n_train, settings.n_test, settings.unseen_test_share, plan_rng)
        controlled = False
    else:
        specs = list(specs)
        controlled = True
        for i, sp in enumerate(specs):
            sp.check(i)
            cam = by_name.get(sp.camera) or scenes[camera_index_of(settings, sp.camera)]
            if sp.manoeuvre not in cam.manoeuvres_for(sp.type):
                raise ValueError(f"track spec #{i} ({sp.camera}): the camera cannot show a {sp.type} doing "
                                 f"{sp.manoeuvre!r}; it offers {sorted(cam.manoeuvres_for(sp.type))}")
    specs = [sp if sp.camera in by_name else TrackSpec(scenes[camera_index_of(settings, sp.camera)].name, sp.type,
                                                       sp.colour, sp.manoeuvre, sp.split, sp.sentences)
             for sp in specs]
    track_ids = _uuids(rng_for(seed, 6), len(specs) + sum(sp.split == "test" for sp in specs))
    uuids = track_ids[:len(specs)]
    query_ids = iter(track_ids[len(specs):])

    # Vehicles per camera: its tracks, plus unannotated traffic at random positions.
    per_cam: dict[str, list[VehicleJob]] = {s.name: [] for s in scenes}
    spec_of: dict[str, tuple[int, TrackSpec]] = {}
    for i, (sp, u) in enumerate(zip(specs, uuids)):
        per_cam[sp.camera].append(VehicleJob(u, sp.type, sp.colour, sp.manoeuvre, True, 0))
        spec_of[u] = (i, sp)
    traffic_rng = rng_for(seed, 7)
    type_w = np.array([t.weight for t in TYPES.values()])
    colour_w = np.array([c.weight for c in COLOURS.values()])
    jobs: list[CameraJob] = []
    _remove_stale_partials(out_path)
    tmp = out_path.parent / f".{out_path.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for scene in scenes:
        vehicles = per_cam[scene.name]
        if not vehicles:
            continue
        n_traffic = int(round(settings.traffic_share * len(vehicles)))
        for k in range(n_traffic):
            vt = list(TYPES)[int(traffic_rng.choice(len(TYPES), p=type_w / type_w.sum()))]
            mans = sorted({r.manoeuvre for r in scene.all_routes})
            w = np.array([{"straight": 0.5, "left": 0.15, "right": 0.15, "stop": 0.1, "lane_change": 0.1}[m]
                          for m in mans])
            col = list(COLOURS)[int(traffic_rng.choice(len(COLOURS), p=colour_w / colour_w.sum()))]
            man = mans[int(traffic_rng.choice(len(mans), p=w / w.sum()))]
            pos = int(traffic_rng.integers(len(vehicles) + 1))
            vehicles.insert(pos, VehicleJob(f"traffic-{k}", vt, col, man, False, 0))
        vehicles = [VehicleJob(v.key, v.vtype, v.colour, v.manoeuvre, v.track, idx) for idx, v in enumerate(vehicles)]
        jobs.append(CameraJob(settings, seed, scene.camera_index, tuple(vehicles),
                              str(tmp / scene.rel_dir / "vdo.avi")))
    timings["plan_s"] = time.perf_counter() - t

    try:
        t = time.perf_counter()
        results = _run_jobs(jobs, _workers(settings, len(jobs)), progress)
        timings["render_s"] = time.perf_counter() - t
        t = time.perf_counter()
        report = _write(tmp, settings, seed, specs, uuids, query_ids, spec_of, results, scenes, controlled,
                        overrides)
        timings["write_s"] = time.perf_counter() - t
        t = time.perf_counter()
        validation = validate_dataset(tmp, check_frames=True)
        timings["validate_s"] = time.perf_counter() - t
        _place(tmp, out_path, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    timings["total_s"] = time.perf_counter() - t_start
    report.update({"out": str(out_path), "time_s": round(timings["total_s"], 3),
                   "timings": {k: round(v, 3) for k, v in timings.items()},
                   "workers": _workers(settings, len(jobs)), "validation_warnings": validation.n_warnings,
                   "warning_kinds": dict(validation.warning_counts), "reused": False})
    validation.root = out_path.resolve()  # the same files, now in place
    return report, validation


def _write(tmp: Path, settings: Settings, seed: int, specs: list[TrackSpec], uuids: list[str], query_ids: Any,
           spec_of: dict[str, tuple[int, TrackSpec]], results: list[dict[str, Any]], scenes: list[Any],
           controlled: bool, overrides: dict[str, Any]) -> dict[str, Any]:
    tracks: dict[str, dict[str, Any]] = {}
    cam_info: dict[str, dict[str, Any]] = {}
    for res in results:
        for u, tr in res["tracks"].items():
            tracks[u] = {**tr, "rel_dir": res["rel_dir"], "camera": res["camera"]}
        cam_info[res["rel_dir"]] = {"camera": res["camera"], "layout": res["layout"], "n_frames": res["n_frames"],
                                    "n_vehicles": res["n_vehicles"], "n_tracks": res["n_tracks"],
                                    "manoeuvres": res["manoeuvres"], "mean_on_screen": res["mean_on_screen"]}
    role = {s.rel_dir: s.scenario.role for s in scenes}
    for rel, info in cam_info.items():
        info["role"] = role[rel]
    train_json: dict[str, Any] = {}
    test_json: dict[str, Any] = {}
    queries: dict[str, list[str]] = {}
    gt: dict[str, str] = {}
    labels: dict[str, Any] = {}
    for u in uuids:
        i, sp = spec_of[u]
        tr = tracks[u]
        frames = [f"{tr['rel_dir']}/img1/{f:06d}.jpg" for f in tr["frames"]]
        truth = {"type": sp.type, "colour": sp.colour, "manoeuvre": sp.manoeuvre}
        rng = rng_for(seed, 5, i)
        if sp.sentences is not None:
            texts = list(sp.sentences)
            meta = [{"noise": None, "test_only": False, "context": [], "given": True} for _ in texts]
        else:
            sents = describe(truth, tr["context"], rng, noise_rate=settings.noise_rate,
                             test_only_share=settings.test_only_share if sp.split == "test" else 0.0)
            texts = [s.text for s in sents]
            meta = [{"noise": s.noise, "test_only": s.test_only, "context": s.context} for s in sents]
        label = {"split": sp.split, "camera": tr["camera"], "folder": tr["rel_dir"].split("/")[0], **truth,
                 "route": tr["route"], "n_frames": len(frames), "context": tr["context"],
                 "stopped_frames": tr["stopped_frames"], "sentences": meta}
        if sp.split == "train":
            train_json[u] = {"frames": frames, "boxes": tr["boxes"], "nl": texts}
        else:
            q = next(query_ids)
            test_json[u] = {"frames": frames, "boxes": tr["boxes"]}
            queries[q] = texts
            gt[q] = u
            label["query"] = q
        labels[u] = label
    write_json(tmp / "train-tracks.json", train_json)
    write_json(tmp / "test-tracks.json", test_json)
    write_json(tmp / "test-queries.json", queries)
    write_json(tmp / "test-gt.json", gt)
    write_json(tmp / "synthetic-labels.json", labels)
    lengths = [v["n_frames"] for v in labels.values()]
    diff = difficulty(labels, "test")
    counts = {
        "train_tracks": len(train_json), "test_tracks": len(test_json), "queries": len(queries),
        "cameras": len(cam_info), "scenarios": len({c["camera"].split("/")[0] for c in cam_info.values()}),
        "frames": int(sum(c["n_frames"] for c in cam_info.values())),
        "boxes": int(sum(lengths)),
        "types": dict(sorted(Counter(v["type"] for v in labels.values()).items())),
        "colours": dict(sorted(Counter(v["colour"] for v in labels.values()).items())),
        "manoeuvres": dict(sorted(Counter(v["manoeuvre"] for v in labels.values()).items())),
    }
    dataset = {
        "generator": "lib.synthetic", "version": GENERATOR_VERSION, "preset": settings.preset, "seed": int(seed),
        "controlled": controlled,
        "overrides": _jsonable({k: v for k, v in sorted(overrides.items()) if k != "workers"}),
        "resolution": [settings.width, settings.height], "fps": settings.fps, "counts": counts,
        "track_frames": {"min": min(lengths, default=0), "max": max(lengths, default=0),
                         "mean": round(float(np.mean(lengths)), 2) if lengths else 0.0,
                         "median": float(np.median(lengths)) if lengths else 0.0},
        "difficulty": diff, "cameras": dict(sorted(cam_info.items())),
        "settings": {k: v for k, v in settings.to_json().items() if k != "workers"},
        "notes": (f"Track lengths are log-normal (median {settings.track_len_median} frames, capped at "
                  f"{settings.max_track_frames}; the real test split: median 30, mean 51, max 1046); stop waits "
                  f"are capped at {settings.stop_wait_max} frames. Box sizes follow the camera geometry "
                  f"(pole cameras 8-13 m high, 26-38 m from the junction)."),
    }
    write_json(tmp / "dataset.json", dataset)
    return {"preset": settings.preset, "seed": int(seed), "counts": counts, "difficulty": diff,
            "track_frames": dataset["track_frames"]}


def dataset_matches(root: str | os.PathLike[str], preset: str, seed: int, **overrides: Any) -> bool:
    """Whether ``root`` holds a complete dataset generated with this preset, seed and overrides, and with the
    settings the preset resolves to now (``dataset.json`` ``settings``)."""
    path = Path(root) / "dataset.json"
    if not path.exists():
        return False
    try:
        info = read_json(path)
    except ValueError:
        return False
    want = _jsonable({k: v for k, v in sorted(overrides.items()) if k != "workers"})
    try:  # the preset's resolved settings too: an edited preset (say, more test tracks) is another dataset
        settings = _jsonable({k: v for k, v in resolve(preset, **overrides).to_json().items() if k != "workers"})
    except (ValueError, TypeError):
        return False
    return (info.get("generator") == "lib.synthetic" and info.get("version") == GENERATOR_VERSION
            and info.get("preset") == preset and info.get("seed") == int(seed) and not info.get("controlled")
            and info.get("overrides") == want and _jsonable(info.get("settings")) == settings)


def ensure_dataset(preset: str = "tiny", seed: int = 0, out: str | os.PathLike[str] | None = None,
                   progress: bool = True, **overrides: Any) -> dict[str, Any]:
    """Reuse ``out`` when it already holds this preset and seed (``dataset.json``), else generate it (replacing
    whatever is there)."""
    return _ensure_validated(preset, seed, out, progress, **overrides)[0]


def _ensure_validated(preset: str, seed: int, out: str | os.PathLike[str] | None, progress: bool,
                      **overrides: Any) -> tuple[dict[str, Any], ValidationReport | None]:
    """:func:`ensure_dataset`, and the generator's frame-checked validation when it generated (None when reused)."""
    from lib.paths import data_dir

    out_path = Path(out) if out is not None else data_dir(preset)
    if dataset_matches(out_path, preset, seed, **overrides):
        info = read_json(out_path / "dataset.json")
        return {"out": str(out_path.resolve()), "preset": preset, "seed": int(seed), "counts": info["counts"],
                "difficulty": info["difficulty"], "track_frames": info["track_frames"], "reused": True}, None
    if out_path.is_dir() and any(out_path.iterdir()) and not _is_synthetic(out_path):
        raise FileExistsError(f"{out_path}: holds files but no synthetic dataset.json; refusing to replace it (a real "
                              "CityFlow-NL folder is validated with real_data=True, else choose another folder)")
    return _generate_validated(preset, seed, out_path, None, overwrite=True, progress=progress, **overrides)


def _is_synthetic(root: Path) -> bool:
    try:
        return read_json(root / "dataset.json").get("generator") == "lib.synthetic"
    except (FileNotFoundError, ValueError, AttributeError):
        return False


def settings_of(data_root: str | os.PathLike[str]) -> tuple[Settings, int]:
    """The resolved settings and seed a synthetic dataset was generated with (from its ``dataset.json``)."""
    info = read_json(Path(data_root) / "dataset.json")
    if info.get("generator") != "lib.synthetic":
        raise ValueError(f"{data_root}/dataset.json: not a synthetic dataset")
    return resolve(info["preset"], **info.get("overrides", {})), int(info["seed"])


def camera_background(data_root: str | os.PathLike[str], camera: str) -> np.ndarray:
    """The empty frame (BGR, no vehicles) of a synthetic dataset's camera (``S01/c001`` or ``train/S01/c001``),
    rebuilt deterministically from ``dataset.json``."""
    settings, seed = settings_of(data_root)
    name = "/".join(camera.split("/")[-2:])
    bg, _ = build_camera(settings, seed, camera_index_of(settings, name)).background()
    return bg


def prepare_data_root(data_root: str | os.PathLike[str], preset: str = "tiny", seed: int = 0, real_data: bool = False,
                      progress: bool = True, **overrides: Any) -> dict[str, Any]:
    """Notebook 00's step: with ``real_data`` validate the CityFlow-NL folder at ``data_root`` (raises
    ``DatasetError`` listing every problem); otherwise generate the synthetic preset there, or reuse it when
    ``dataset.json`` says it is this preset and seed, then validate it with its videos.

    Returns ``{"data_root", "real_data", "generation" (the generator's report, or None), "validation"}``."""
    from lib.cityflow import validate_dataset

    root = Path(data_root).expanduser().resolve()
    generation, validation = None, None
    if not real_data:
        # a dataset generated now was validated, frames decoded, just before it was placed: not decoded twice
        generation, validation = _ensure_validated(preset, seed, root, progress, **overrides)
    if validation is None:
        validation = validate_dataset(root, check_frames=not real_data)
    return {"data_root": str(root), "real_data": bool(real_data), "generation": generation,
            "validation": validation}
