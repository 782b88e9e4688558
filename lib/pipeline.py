"""The reproduction runner: the numbered notebooks in order, with papermill, for one profile.

``python -m lib.pipeline --profile NAME [--force] [--from STEP] [--configs a,b] [--dry-run]``

A profile (``params/profiles/NAME.yaml``) names a dataset (a synthetic preset or a real ``data_root``), the model
configurations to train and embed, overrides merged into every configuration, and extra parameters per notebook.
Everything is validated before the first notebook starts: every parameter the runner would pass must be declared in
the target notebook's ``parameters`` cell, and every configuration must load (unknown keys are errors that list the
allowed ones).

Outputs land in ``artifacts/runs/<profile>/``: ``notebooks/`` (each executed notebook), ``params/`` (the resolved
parameters of each task with the git commit), ``metrics/`` (what each notebook's last cell recorded), ``state/``
(fingerprints for skipping) and ``pipeline.json`` (timings). A task whose notebook, parameters, library code and
upstream tasks are unchanged since its last success is skipped — and the content of the dataset files it reads
(:data:`STEP_INPUTS`: annotation JSON by their bytes, videos by size and modification time), so an edited sentence
or box re-runs what reads it. ``--force`` re-runs everything, caches included (``CFNL_FORCE=1`` for the notebooks),
and ``--from STEP`` re-runs that step and every step after it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from lib.config import ConfigError, check_keys, load_yaml, resolve_params_path
from lib.families import load_config
from lib.io import FORCE_ENV, file_hash, git_commit, read_json, write_json
from lib.paths import NOTEBOOKS, PROFILES, ROOT, data_dir, reports_dir, runs_dir
from lib.paths import prep_dir as prep_dir_of
from lib.preflight import PreflightError
from lib.progress import HEADLESS_ENV

STEPS = ("00_data", "01_frames", "02_motion_maps", "03_text_augmentation", "04_train", "05_embed", "06_ensemble")
PER_CONFIG = ("04_train", "05_embed")
PROFILE_KEYS = ("description", "dataset", "configs", "overrides", "notebooks")
DATASET_KEYS = ("preset", "seed", "data_root", "name")
# What every kernel the runner starts gets, whatever the caller's environment says (pytest sets MPLBACKEND=Agg for
# itself): matplotlib's inline backend, so each figure is stored in the executed notebook as an image/png output,
# and the headless flag (lib.progress): text progress bars that keep their final state, no widgets.
KERNEL_ENV = {"MPLBACKEND": "module://matplotlib_inline.backend_inline", HEADLESS_ENV: "1"}
# CPU kernel paths (README "Same numbers on another machine", benchmarks/cpu_kernels.py): `native` leaves PyTorch, MKL
# and oneDNN to pick the machine's best code and the core count; `portable` pins the AVX2 code of all three and two
# threads, the path any x86-64 machine with AVX2 can take (the README's numbers are `native` on an AVX-512 machine).
KERNEL_PATHS: dict[str, dict[str, str]] = {
    "native": {},
    "portable": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                 "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"},
}


class PipelineError(RuntimeError):
    """A task failed; the message names the step, the cell's error and the executed notebook."""


@dataclasses.dataclass
class Task:
    step: str
    config: str | None
    params: dict[str, Any]
    depends: list[str]
    tag: str | None = None  # a per-variant task of a shared step (02_motion_maps for a non-published variant)

    @property
    def key(self) -> str:
        sub = self.config if self.config is not None else self.tag
        return self.step if sub is None else f"{self.step}__{sub}"

    @property
    def label(self) -> str:
        sub = self.config if self.config is not None else self.tag
        return self.step if sub is None else f"{self.step} [{sub}]"


def motion_task_key(variant: str) -> str:
    """The task key of the motion maps of ``variant``: ``02_motion_maps`` for the published maps, else
    ``02_motion_maps__<variant>``."""
    return "02_motion_maps" if variant == "published" else f"02_motion_maps__{variant}"


def motion_variants_used(cfgs: Mapping[str, Any]) -> dict[str, str | None]:
    """``{config: motion-map variant}`` (None for a configuration without a motion stream)."""
    return {name: (str(cfg.data.motion_variant) if getattr(cfg.model, "motion_stream", False) else None)
            for name, cfg in cfgs.items()}


@dataclasses.dataclass
class Profile:
    name: str
    path: Path
    dataset: dict[str, Any]
    configs: list[str]
    overrides: dict[str, Any]
    notebooks: dict[str, dict[str, Any]]
    description: str = ""


def load_profile(name_or_path: str | os.PathLike[str]) -> Profile:
    p = Path(name_or_path)
    path = p.resolve() if p.suffix in (".yaml", ".yml") and p.exists() else (PROFILES / f"{name_or_path}.yaml")
    if not path.exists():
        known = sorted(q.stem for q in PROFILES.glob("*.yaml"))
        raise FileNotFoundError(f"profile {name_or_path!r} not found ({path}); known profiles: {known}")
    raw = load_yaml(path)
    check_keys(raw, PROFILE_KEYS, str(path))
    dataset = dict(raw.get("dataset") or {})
    check_keys(dataset, DATASET_KEYS, f"{path}: dataset")
    if "preset" not in dataset and "data_root" not in dataset:
        raise ConfigError(f"{path}: dataset needs 'preset' (synthetic) or 'data_root' (real CityFlow-NL)")
    notebooks = dict(raw.get("notebooks") or {})
    check_keys(notebooks, STEPS, f"{path}: notebooks")
    return Profile(name=path.stem, path=path, dataset=dataset, configs=list(raw.get("configs") or []),
                   overrides=dict(raw.get("overrides") or {}), notebooks=notebooks,
                   description=str(raw.get("description", "")))


def _dataset_paths(profile: Profile) -> tuple[Path, Path, str]:
    ds = profile.dataset
    if "data_root" in ds:
        raw = os.path.expandvars(str(ds["data_root"]))
        root = Path(raw).expanduser().resolve()
        if "$" in raw or not root.is_dir():
            raise FileNotFoundError(
                f"{profile.path}: dataset.data_root {ds['data_root']!r} -> {raw!r} is not a folder. Put the real "
                "CityFlow-NL (AIC21_Track5_NL_Retrieval: train/, validation/, train-tracks.json, test-tracks.json, "
                "test-queries.json) there, or set the environment variable it names.")
        name = str(ds.get("name") or root.name)
        return root, prep_dir_of(name), name
    name = str(ds.get("name") or ds["preset"])
    return data_dir(name), prep_dir_of(name), name


def report_dir(profile_name: str) -> Path:
    """``artifacts/reports/`` for the default reproduction, ``artifacts/reports/<profile>/`` for the others."""
    base = reports_dir()
    return base if profile_name == "default" else base / profile_name


def plan(profile: Profile, notebooks_dir: Path = NOTEBOOKS, configs: Sequence[str] | None = None) -> list[Task]:
    """Build the task list and validate every parameter and configuration before anything runs."""
    run_dir = runs_dir(profile.name)
    data_root, prep_dir, _ = _dataset_paths(profile)
    metrics = run_dir / "metrics"
    real = "data_root" in profile.dataset
    chosen = list(configs) if configs else profile.configs
    unknown = [c for c in chosen if c not in profile.configs] if configs else []
    if unknown:
        raise ConfigError(f"--configs: {unknown} not in profile {profile.name!r} (it has {profile.configs})")

    base: dict[str, dict[str, Any]] = {
        "00_data": {"data_root": data_root, "real_data": real, **(
            {} if real else {"preset": profile.dataset["preset"], "seed": int(profile.dataset.get("seed", 0))})},
        "01_frames": {"data_root": data_root},
        "02_motion_maps": {"data_root": data_root, "prep_dir": prep_dir},
        "03_text_augmentation": {"data_root": data_root, "prep_dir": prep_dir},
    }
    # every section validated before anything runs (ConfigError names the key)
    cfgs = {name: load_config(resolve_params_path(name), profile.overrides) for name in chosen}
    used = motion_variants_used(cfgs)
    # 02 builds the maps of every variant a chosen configuration reads (the published ones when none reads maps);
    # a variant set in the profile's notebooks section is built in addition
    extra = (profile.notebooks.get("02_motion_maps") or {}).get("variant")
    variants = sorted({v for v in used.values() if v is not None} | ({str(extra)} if extra else set()),
                      key=lambda v: (v != "published", v)) or ["published"]
    tasks: list[Task] = []
    for step in STEPS[:4]:
        dep = {"00_data": [], "01_frames": ["00_data"], "02_motion_maps": ["01_frames"],
               "03_text_augmentation": ["00_data"]}[step]
        if step == "02_motion_maps":
            for v in variants:
                key = motion_task_key(v)
                tasks.append(Task(step, None, {**base[step], **profile.notebooks.get(step, {}), "variant": v,
                                               "metrics_path": metrics / f"{key}.json"}, dep,
                                  tag=None if v == "published" else v))
            continue
        tasks.append(Task(step, None, {**base[step], **profile.notebooks.get(step, {}),
                                       "metrics_path": metrics / f"{step}.json"}, dep))
    embed_keys = []
    for name in chosen:
        cfg_path = resolve_params_path(name)
        train_out = run_dir / "train" / name
        # a configuration without a motion stream still waits for the first motion task (the run's order)
        motion_dep = motion_task_key(used[name] or variants[0])
        tasks.append(Task("04_train", name, {
            "config": cfg_path, "overrides": profile.overrides, "data_root": data_root, "prep_dir": prep_dir,
            "out_dir": train_out, **profile.notebooks.get("04_train", {}),
            "metrics_path": metrics / f"04_train__{name}.json"}, [motion_dep, "03_text_augmentation"]))
        tasks.append(Task("05_embed", name, {
            "config": cfg_path, "overrides": profile.overrides, "checkpoint": train_out / "best.safetensors",
            "data_root": data_root, "prep_dir": prep_dir, "out_dir": run_dir / "embed" / name,
            **profile.notebooks.get("05_embed", {}), "metrics_path": metrics / f"05_embed__{name}.json"},
            [f"04_train__{name}", "01_frames"]))
        embed_keys.append(f"05_embed__{name}")
    tasks.append(Task("06_ensemble", None, {
        "data_root": data_root, "prep_dir": prep_dir, "runs_dir": run_dir, "configs": chosen,
        "out_dir": run_dir / "ensemble", "report_dir": report_dir(profile.name),
        **profile.notebooks.get("06_ensemble", {}), "metrics_path": metrics / "06_ensemble.json"}, embed_keys))

    # Every parameter must be declared by its notebook (papermill itself would only warn).
    from lib.notebook import notebook_parameters

    declared: dict[str, dict[str, Any]] = {}
    for step in STEPS:
        nb = notebooks_dir / f"{step}.ipynb"
        if not nb.exists():
            raise FileNotFoundError(f"{nb}: notebook of step {step} not found")
        declared[step] = notebook_parameters(nb)
    for step, extra in profile.notebooks.items():
        check_keys(extra or {}, declared[step], f"{profile.path}: notebooks: {step}")
    for t in tasks:
        check_keys(t.params, declared[t.step], f"runner -> {t.label}")
    return tasks


def preflight_check(profile: Profile, configs: Sequence[str] | None = None,
                    notebooks_dir: Path = NOTEBOOKS) -> dict[str, Any]:
    """:func:`lib.preflight.check` for what the run would use: the chosen configurations (all of the profile's by
    default), the dataset folder (an unresolvable ``data_root`` is one item of the list, beside the others) and
    03's ``n_val`` as the runner passes it (else the notebook's default)."""
    from lib.notebook import notebook_parameters
    from lib.preflight import check

    try:
        data_root: Path | str = _dataset_paths(profile)[0]
    except FileNotFoundError as e:
        data_root = str(e)
    cfg_paths = [resolve_params_path(c) for c in (configs or profile.configs)]
    n_val = (profile.notebooks.get("03_text_augmentation") or {}).get("n_val")
    if n_val is None:
        n_val = notebook_parameters(notebooks_dir / "03_text_augmentation.ipynb").get("n_val")
    return check(profile, data_root, cfg_paths, int(n_val) if n_val is not None else None)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    return obj


def _code_fingerprint() -> str:
    h = hashlib.sha256()
    for p in sorted((ROOT / "lib").rglob("*.py")):
        h.update(str(p.relative_to(ROOT)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


# The dataset files each step reads (its content is part of the step's fingerprint): annotation JSON by their
# bytes, videos by size and modification time. 00_data reads the files of a real dataset (it generates synthetic
# ones: then its own inputs are its parameters).
STEP_INPUTS: dict[str, tuple[str, ...]] = {
    "00_data": ("train-tracks.json", "test-tracks.json", "test-queries.json", "test-gt.json"),
    "01_frames": ("train-tracks.json", "test-tracks.json", "*/vdo.avi"),
    "02_motion_maps": ("train-tracks.json", "test-tracks.json", "*/vdo.avi"),
    "03_text_augmentation": ("train-tracks.json", "test-queries.json"),
    "04_train": ("train-tracks.json",),
    "05_embed": ("train-tracks.json", "test-tracks.json", "test-queries.json", "*/vdo.avi"),
    "06_ensemble": ("train-tracks.json", "test-tracks.json", "test-queries.json", "test-gt.json"),
}


def data_fingerprint(step: str, data_root: Path, real: bool = True) -> str:
    """Content hash of the dataset files ``step`` reads (:data:`STEP_INPUTS`); absent files count as absent."""
    h = hashlib.sha256()
    for name in STEP_INPUTS.get(step, ()) if (real or step != "00_data") else ():
        if name == "*/vdo.avi":
            for video in sorted(data_root.glob("*/S*/c*/vdo.avi")):
                st = video.stat()
                h.update(f"{video.relative_to(data_root).as_posix()}:{st.st_size}:{st.st_mtime_ns}\n".encode())
            continue
        path = data_root / name
        h.update(f"{name}:{file_hash(path) if path.exists() else 'absent'}\n".encode())
    return h.hexdigest()


def _fingerprint(task: Task, notebook: Path, code: str, upstream: Mapping[str, str], kernels: str = "native"
                 ) -> str:
    h = hashlib.sha256()
    if kernels != "native":  # another CPU kernel path computes other numbers: its results are not these
        h.update(f"kernels:{kernels}\n".encode())
    h.update(data_fingerprint(task.step, Path(task.params["data_root"]), bool(task.params.get("real_data", True)))
             .encode())
    h.update(notebook.read_bytes())
    h.update(json.dumps(_jsonable(task.params), sort_keys=True).encode())
    if task.config is not None:  # the resolved configuration, so an edit to its YAML (or a parent) re-runs it
        cfg = load_config(task.params["config"], task.params.get("overrides"))
        h.update(json.dumps(cfg.to_dict(), sort_keys=True, default=str).encode())
    h.update(code.encode())
    for dep in task.depends:
        h.update(upstream.get(dep, "").encode())
    return h.hexdigest()


def _format_error(exc: Exception) -> str:
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    tb = getattr(exc, "traceback", None)
    tail = ""
    if tb:
        import re

        text = "\n".join(tb) if isinstance(tb, list) else str(tb)
        tail = "\n" + re.sub(r"\x1b\[[0-9;]*m", "", text)[-3000:]
    return f"{ename}: {evalue}{tail}"


@contextlib.contextmanager
def kernel_environment(kernels: str = "native") -> Iterator[None]:
    """``os.environ`` with :data:`KERNEL_ENV` and the CPU kernel path ``kernels`` (:data:`KERNEL_PATHS`) while
    kernels start (they inherit it); restored afterwards."""
    env = {**KERNEL_ENV, **KERNEL_PATHS[kernels]}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def kernel_config() -> Any:
    """nbclient configuration: CurveZMQ-encrypted kernel sockets where the kernel spec declares support (ours and
    ipykernel's do), so ipykernel does not warn "Kernel is running over TCP without encryption" at every start."""
    import zmq
    from traitlets.config import Config

    c = Config()
    if zmq.has("curve"):
        c.KernelManager.transport_encryption = "auto"
    return c


def run(profile_name: str, force: bool = False, from_step: str | None = None, configs: Sequence[str] | None = None,
        dry_run: bool = False, notebooks_dir: Path = NOTEBOOKS, kernel: str = "python3", preflight: bool = True,
        kernels: str = "native") -> dict[str, Any]:
    """Run (or skip) every task of a profile; return the timing record also written to ``pipeline.json``.
    First the pre-flight (:mod:`lib.preflight`, unless ``preflight=False``): weights, text encoders, data files,
    split size and disk, every problem in one list before any notebook runs."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # Kernels start in notebooks/; make `lib` importable there even without the editable install.
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    if kernels not in KERNEL_PATHS:
        raise ConfigError(f"--kernels: unknown CPU kernel path {kernels!r}; known: {', '.join(KERNEL_PATHS)}")
    if from_step is not None and from_step not in STEPS:
        raise ConfigError(f"--from: unknown step {from_step!r}; steps: {', '.join(STEPS)}")
    profile = load_profile(profile_name)
    if preflight:
        preflight_check(profile, configs, notebooks_dir)
    tasks = plan(profile, notebooks_dir, configs)
    run_dir = runs_dir(profile.name)
    code = _code_fingerprint()
    commit = git_commit()
    fingerprints: dict[str, str] = {}
    record: dict[str, Any] = {"profile": profile.name, "git_commit": commit, "kernels": kernels,
                              "kernel_env": KERNEL_PATHS[kernels], "tasks": []}
    start_all = time.perf_counter()
    print(f"profile {profile.name}: {len(tasks)} tasks -> {run_dir}", flush=True)
    for i, task in enumerate(tasks, 1):
        nb_in = notebooks_dir / f"{task.step}.ipynb"
        fp = _fingerprint(task, nb_in, code, fingerprints, kernels)
        fingerprints[task.key] = fp
        state_path = run_dir / "state" / f"{task.key}.json"
        metrics_path = Path(task.params["metrics_path"])
        forced = force or (from_step is not None and STEPS.index(task.step) >= STEPS.index(from_step))
        prev = read_json(state_path) if state_path.exists() else {}
        up_to_date = prev.get("fingerprint") == fp and metrics_path.exists()
        head = f"[{i}/{len(tasks)}] {task.label}"
        if up_to_date and not forced:
            print(f"{head}: up to date, skipped", flush=True)
            record["tasks"].append({"task": task.key, "status": "skipped", "seconds": 0.0})
            continue
        if dry_run:
            print(f"{head}: would run", flush=True)
            record["tasks"].append({"task": task.key, "status": "would run", "seconds": 0.0})
            continue
        print(f"{head}: running ...", flush=True)
        params = _jsonable(task.params)
        write_json(run_dir / "params" / f"{task.key}.json", {"params": params, "git_commit": commit,
                                                              "notebook": str(nb_in)})
        nb_out = run_dir / "notebooks" / f"{task.key}.ipynb"
        nb_out.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        try:
            import papermill as pm

            # a forced task recomputes its caches too (frames, motion maps, crop caches, embeddings, training state)
            os.environ[FORCE_ENV] = "1" if forced else "0"
            with kernel_environment(kernels):
                pm.execute_notebook(str(nb_in), str(nb_out), parameters=params, kernel_name=kernel,
                                    cwd=str(notebooks_dir), progress_bar=False, log_output=False,
                                    config=kernel_config())
        except Exception as exc:  # papermill raises PapermillExecutionError with the cell's error
            os.environ.pop(FORCE_ENV, None)
            secs = time.perf_counter() - t0
            state_path.unlink(missing_ok=True)
            record["tasks"].append({"task": task.key, "status": "failed", "seconds": round(secs, 2)})
            write_json(run_dir / "pipeline.json", record)
            raise PipelineError(f"{head} failed after {secs:.1f} s\n{_format_error(exc)}\n"
                                f"executed notebook: {nb_out}") from None
        os.environ.pop(FORCE_ENV, None)
        secs = time.perf_counter() - t0
        if not metrics_path.exists():
            raise PipelineError(f"{head}: notebook finished but wrote no metrics at {metrics_path} ({nb_out})")
        write_json(state_path, {"fingerprint": fp, "seconds": secs, "git_commit": commit})
        print(f"{head}: done in {secs:.1f} s", flush=True)
        record["tasks"].append({"task": task.key, "status": "ran", "seconds": round(secs, 2)})
    record["total_seconds"] = round(time.perf_counter() - start_all, 2)
    if not dry_run:
        write_json(run_dir / "pipeline.json", record)
    counts = {s: sum(t["status"] == s for t in record["tasks"]) for s in ("ran", "skipped", "would run")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    print(f"profile {profile.name}: {summary}; {record['total_seconds']:.1f} s", flush=True)
    return record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lib.pipeline", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="default", help="profile name in params/profiles/ or a YAML path")
    ap.add_argument("--force", action="store_true", help="re-run every step")
    ap.add_argument("--from", dest="from_step", choices=STEPS, help="re-run this step and every later one")
    ap.add_argument("--configs", help="comma-separated subset of the profile's configurations")
    ap.add_argument("--dry-run", action="store_true", help="validate and show what would run")
    ap.add_argument("--notebooks", type=Path, default=NOTEBOOKS, help="folder of the numbered notebooks")
    ap.add_argument("--kernels", choices=tuple(KERNEL_PATHS), default="native",
                    help="CPU kernel path of the notebooks: native (the machine's best) or portable (AVX2, 2 threads)")
    ap.add_argument("--no-preflight", action="store_true",
                    help="skip the pre-flight check of weights, text encoders, data files, split size and disk")
    args = ap.parse_args(argv)
    try:
        run(args.profile, force=args.force, from_step=args.from_step,
            configs=args.configs.split(",") if args.configs else None, dry_run=args.dry_run,
            notebooks_dir=args.notebooks, preflight=not args.no_preflight, kernels=args.kernels)
    except PreflightError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (ConfigError, FileNotFoundError, PipelineError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2 if not isinstance(e, PipelineError) else 1
    return 0


if __name__ == "__main__":
    from lib.cli import run_main

    raise SystemExit(run_main(main))
