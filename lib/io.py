"""Atomic writes and run records.

Every artifact is written to a temporary file in the destination folder and renamed into place, so a crash never
leaves a half-written file under the final name and an interrupted run resumes cleanly.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from lib.errors import InputError
from lib.paths import ROOT

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on error delete it.

    ``suffix`` defaults to the destination's suffix so that libraries which infer the format from the
    extension (OpenCV, numpy) keep working.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix if suffix is not None else path.suffix,
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp makes 0600 files; give the result the usual umask-based mode
            os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------------------------
# Ids as file names: the one mapping every writer goes through

_SAFE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
MAX_NAME_BYTES = 200  # file systems allow 255; leaves room for a suffix and the atomic writer's temporary prefix


def safe_name(id_: str) -> str:
    """The file name (without suffix) of a track, query or configuration id; it can never leave its folder.

    An id made of ``[A-Za-z0-9_.-]`` that does not start with ``.`` (every CityFlow-NL uuid, every synthetic id,
    every configuration name) is its own name, so existing file names do not change. Any other character (and a
    leading ``.``) is written ``%XX`` per UTF-8 byte (``%`` itself too), so distinct ids keep distinct names; a
    name longer than :data:`MAX_NAME_BYTES` keeps its start and ends with a hash of the whole id. The empty id is
    an :class:`~lib.errors.InputError`."""
    if not isinstance(id_, str) or not id_:
        raise InputError(f"id {id_!r}: an empty or non-text id cannot name a file")
    out = []
    for i, ch in enumerate(id_):
        if ch in _SAFE_CHARS and not (i == 0 and ch == "."):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
    name = "".join(out)
    if len(name) > MAX_NAME_BYTES:
        digest = hashlib.sha256(id_.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        name = f"{name[:MAX_NAME_BYTES - 17]}~{digest}"
    return name


def path_in(folder: str | os.PathLike[str], id_: str, suffix: str = "") -> Path:
    """``folder / (safe_name(id_) + suffix)``, checked to lie directly inside ``folder``."""
    folder = Path(folder)
    path = folder / (safe_name(id_) + suffix)
    if path.parent != folder or path.name in ("", ".", "..") or os.sep in path.name or "/" in path.name:
        raise InputError(f"id {id_!r}: maps to {path}, outside {folder}")  # pragma: no cover - safe_name forbids it
    return path


# ---------------------------------------------------------------------------------------------------------------
# Content fingerprints: what a cached or skipped result was computed from

FORCE_ENV = "CFNL_FORCE"
"""Set to 1 by ``python -m lib.pipeline --force`` (or ``--from``) for the tasks it re-runs: every cache those tasks
use (frames, motion maps, crop caches, embeddings, the training state) is recomputed, not only the notebook."""


def force_requested(force: bool = False) -> bool:
    """``force``, or the runner asked for a forced re-run (:data:`FORCE_ENV`)."""
    return bool(force) or os.environ.get(FORCE_ENV, "").strip().lower() in ("1", "true", "yes")


def content_hash(obj: Any) -> str:
    """sha256 of the canonical JSON of ``obj`` (sorted keys, no spaces): equal content, equal hash."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default,
                                     ensure_ascii=False).encode("utf-8")).hexdigest()


def file_hash(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_signature(path: str | os.PathLike[str]) -> dict[str, int] | None:
    """``{"size", "mtime_ns"}`` of a file (``None`` when absent): the cheap fingerprint of a large input (videos)."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 100) -> Path:
    """Write a matplotlib figure as PNG atomically (its folder created)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return out


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> Path:
    """Write JSON atomically; keys keep insertion order so equal inputs give byte-identical files."""
    return write_text(path, json.dumps(obj, indent=indent, default=_json_default, ensure_ascii=False) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{path}: is a folder, expected a JSON file") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None


def save_npz(path: str | os.PathLike[str], **arrays: np.ndarray) -> Path:
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)
    return Path(path)


def load_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def save_safetensors(path: str | os.PathLike[str], tensors: dict[str, Any], metadata: dict[str, str] | None = None
                     ) -> Path:
    """Save a dict of torch tensors atomically in safetensors format."""
    from safetensors.torch import save_file

    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    return Path(path)


def git_commit() -> str:
    """The current commit (with ``-dirty`` when the work tree has changes), or ``unknown`` outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "processor": platform.processor() or platform.machine(), "cpus": os.cpu_count()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["kernels"] = kernel_info()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["gpus"] = torch.cuda.device_count()
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    return info


KERNEL_ENV_VARS = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
"""The environment variables that choose CPU kernel code paths and thread counts (recorded in every run_info)."""


def _cpu_model() -> tuple[str, list[str]]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), []
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "")
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in flags]
    return model, isa


def kernel_info() -> dict[str, Any]:
    """The CPU kernel path this process computes with: the CPU and its vector extensions, PyTorch's chosen ATen
    capability, the MKL and oneDNN builds, the thread count and the variables of :data:`KERNEL_ENV_VARS`. Two runs
    with the same kernel path give the same numbers; see README "Same numbers on another machine"."""
    import torch

    model, isa = _cpu_model()
    info: dict[str, Any] = {"cpu": model, "cpu_isa": isa, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                            "torch_threads": torch.get_num_threads(),
                            "env": {k: os.environ[k] for k in KERNEL_ENV_VARS if k in os.environ}}
    for line in torch.__config__.show().splitlines():
        line = line.strip(" -")
        if line.startswith("Intel(R) oneAPI Math Kernel Library Version"):
            info["mkl"] = line.split("Version", 1)[1].split("Product")[0].strip(" -")
        elif line.startswith("Intel(R) MKL-DNN"):  # "Intel(R) MKL-DNN v3.12.0 (Git Hash ...)"
            info["onednn"] = line.removeprefix("Intel(R) MKL-DNN").split("(")[0].strip()
    return info


def write_run_info(out_dir: str | os.PathLike[str], params: dict[str, Any], name: str = "run_info.json") -> Path:
    """Record the resolved parameters, git commit, machine and time beside a run's outputs."""
    return write_json(Path(out_dir) / name, {
        "params": params,
        "git_commit": git_commit(),
        "machine": machine_info(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
