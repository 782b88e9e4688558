"""Checkpoints: exported weights (``safetensors``) and the resume state (``state.pt``, tensors and plain values
only, read back with ``torch.load(..., weights_only=True)``).

``state.pt`` is the single source of truth for resuming: it holds the model weights, optimizer, scheduler and
grad-scaler state, the completed step, the best validation result, the history so far and every RNG state of every
rank (torch CPU/CUDA, numpy, Python). It is written atomically after ``last.safetensors``, so a crash at any point
leaves a consistent ``state.pt`` of the last completed checkpoint. ``last.safetensors`` / ``best.safetensors``
are exports (weights + metadata ``{"family", "config", "step", "model_kwargs"}``) that
:func:`lib.families.load_trained_model` turns back into a model.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from lib.errors import CorruptFileError
from lib.families.weights import load_weights, read_metadata, save_weights  # noqa: F401  (re-exported)
from lib.io import atomic_path

if TYPE_CHECKING:
    pass


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
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise CorruptFileError(f"{path}: cannot read the resume state ({type(e).__name__}: {first}); delete it "
                               f"(and last.safetensors) to restart the run from scratch") from e
