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


# --- which weights become best.safetensors -------------------------------------------------------------------
class CheckpointRule:
    """The checkpoint rules other than ``best_val_mrr`` (decided at each validation by the loop):

    - ``final``: the final weights;
    - ``best_train_top1``: the best mean training top-1 (``logs["train_top1"]``) over a window of ``window`` steps
      (the validation interval; Part One's ``checkpoint_best.pth``, best mean training top-1 of an epoch);
    - ``lowest_loss``: the original Part Two ``net_last`` rule: the pass with the lowest mean logged loss (warm-up
      factor included, as logged); its weights are the ones at the next save (every ``save_every`` passes), or the
      final weights when it comes after the last save.

    :meth:`observe` is called after every optimizer step and says when to write ``best.safetensors`` now;
    :meth:`take_final` at the end says whether the final weights are the chosen ones. Its state resumes exactly.
    """

    def __init__(self, rule: str, steps_per_epoch: int, window: int, save_every_passes: float = 10.0) -> None:
        self.rule = rule
        self.spe = max(1, int(steps_per_epoch))
        self.window = max(1, int(window))
        self.save_every = max(1, int(round(save_every_passes * self.spe)))
        self.acc, self.n = 0.0, 0
        self.best: float | None = None
        self.best_at = -1
        self.pending = False

    def observe(self, step: int, loss: Any, logs: dict[str, float]) -> bool:
        """``loss``: a float or a 0-d tensor, read (a device sync) only by the rule that needs it."""
        if self.rule == "best_train_top1":
            if "train_top1" not in logs:
                raise KeyError("train.checkpoint: best_train_top1 needs the family to log 'train_top1'")
            self.acc, self.n = self.acc + float(logs["train_top1"]), self.n + 1
            if step % self.window == 0:
                mean, self.acc, self.n = self.acc / self.n, 0.0, 0
                if self.best is None or mean > self.best:
                    self.best, self.best_at = mean, step
                    return True
            return False
        if self.rule == "lowest_loss":
            self.acc, self.n = self.acc + float(loss), self.n + 1
            if step % self.spe == 0:
                mean, self.acc, self.n = self.acc / self.n, 0.0, 0
                if self.best is None or mean < self.best:
                    self.best, self.best_at, self.pending = mean, step, True
            if step % self.save_every == 0 and self.pending:
                self.pending = False
                return True
            return False
        return False

    def take_final(self, step: int) -> bool:
        return self.rule == "final" or (self.rule == "lowest_loss" and self.pending)

    def record(self) -> dict[str, Any]:
        return {"rule": self.rule, "best_value": self.best, "best_at_step": self.best_at}

    def state_dict(self) -> dict[str, Any]:
        return {"acc": self.acc, "n": self.n, "best": self.best, "best_at": self.best_at, "pending": self.pending}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.acc, self.n = float(state["acc"]), int(state["n"])
        self.best = None if state["best"] is None else float(state["best"])
        self.best_at, self.pending = int(state["best_at"]), bool(state["pending"])
