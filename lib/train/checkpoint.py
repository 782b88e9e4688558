"""Checkpoints: exported weights (``safetensors``) and the resume state (``state.pt``, tensors and plain values
only, read back with ``torch.load(..., weights_only=True)``).

``state.pt`` is the single source of truth for resuming: it holds the model weights, optimizer, scheduler and
grad-scaler state, the completed step, the best validation result, the history so far and every RNG state of every
rank (torch CPU/CUDA, numpy, Python). It is written atomically after ``last.safetensors``, so a crash at any point
leaves a consistent ``state.pt`` of the last completed checkpoint. ``last.safetensors`` / ``best.safetensors``
are exports (weights + metadata ``{"family", "config", "step", "model_kwargs"}``) that :func:`load_trained_model`
turns back into a model.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from lib.io import atomic_path, save_safetensors

if TYPE_CHECKING:
    from lib.config import RunConfig


# --- RNG state as tensors ----------------------------------------------------------------------------------------
def capture_rng() -> dict[str, torch.Tensor]:
    """Every global RNG state of this process, as tensors."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    out = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
        "numpy_meta": torch.tensor([int(np_state[2]), int(np_state[3])], dtype=torch.int64),
        "numpy_gauss": torch.tensor([float(np_state[4])], dtype=torch.float64),
        "python": torch.tensor(list(py_state[1]), dtype=torch.int64),
        "python_gauss": torch.tensor([float("nan") if py_state[2] is None else float(py_state[2])],
                                     dtype=torch.float64),
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    return out


def restore_rng(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["torch"].to(torch.uint8).cpu())
    meta = state["numpy_meta"].tolist()
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), int(meta[0]), int(meta[1]),
                         float(state["numpy_gauss"].item())))
    g = float(state["python_gauss"].item())
    random.setstate((3, tuple(int(v) for v in state["python"].tolist()), None if np.isnan(g) else g))
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        for i in range(min(cuda.shape[0], torch.cuda.device_count())):
            torch.cuda.set_rng_state(cuda[i].to(torch.uint8).cpu(), i)


# --- state.pt ----------------------------------------------------------------------------------------------------
def save_state(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(state, tmp)
    return Path(path)


def load_state(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise RuntimeError(f"{path}: cannot read the resume state ({type(e).__name__}: {e}); delete it (and "
                           f"last.safetensors) to restart the run from scratch") from e


# --- weights exports ---------------------------------------------------------------------------------------------
def save_weights(path: str | os.PathLike[str], model: nn.Module, cfg: RunConfig, step: int,
                 model_kwargs: dict[str, Any], extra: dict[str, Any] | None = None) -> Path:
    meta = {"family": cfg.family, "config": cfg.name, "step": str(step), "model_kwargs": json.dumps(model_kwargs)}
    for k, v in (extra or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    return save_safetensors(path, dict(model.state_dict()), metadata=meta)


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_weights(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    return load_file(str(path), device=str(device))


def load_trained_model(cfg: RunConfig, checkpoint: str | os.PathLike[str], device: str | torch.device | None = None
                       ) -> nn.Module:
    """Rebuild the model of ``cfg`` with the architecture recorded in ``checkpoint`` (a ``*.safetensors`` written
    by the trainer), load its weights (strict) and return it in eval mode on ``device``."""
    from lib.family import get_family

    if device is None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    meta = read_metadata(checkpoint)
    if meta.get("family") and meta["family"] != cfg.family:
        raise ValueError(f"{checkpoint}: checkpoint of family {meta['family']!r}, configuration {cfg.source} is "
                         f"family {cfg.family!r}")
    model_kwargs = json.loads(meta.get("model_kwargs", "{}"))
    model = get_family(cfg.family).build_model(cfg, **model_kwargs)
    missing, unexpected = model.load_state_dict(load_weights(checkpoint), strict=False)
    if missing or unexpected:
        raise RuntimeError(f"{checkpoint}: weights do not match configuration {cfg.source}: missing "
                           f"{missing[:10]}{'...' if len(missing) > 10 else ''}, unexpected "
                           f"{unexpected[:10]}{'...' if len(unexpected) > 10 else ''}")
    return model.to(device).eval()
