"""Training fields every family's ``train`` section has (families subclass :class:`BaseTrainCfg`).

Steps are the unit of everything: one step = one optimizer update on one *global* batch (``batch_size`` samples,
split evenly over the DDP ranks). One epoch = one pass over the train split = ``len(train) // batch_size`` steps
(the last partial batch is dropped so every batch has the same size, which a contrastive loss needs).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BaseTrainCfg:
    batch_size: int = 64
    """Global batch size (all ranks together); must be divisible by the number of DDP processes."""
    lr: float = 0.01
    epochs: float | None = None
    """Length of the run in passes over the train split (ignored when ``max_steps`` is set)."""
    max_steps: int | None = None
    """Length of the run in steps (wins over ``epochs``; the CLI's ``--max-steps`` wins over both)."""
    seed: int = 0
    val_every: int | None = None
    """Validate (val MRR) every this many steps (None: every ``val_every_epochs``). Always at the last step."""
    val_every_epochs: float = 1.0
    """Validation interval in passes over the train split, used when ``val_every`` is None."""
    ckpt_every: int | None = None
    """Write ``last.safetensors`` + ``state.pt`` every this many steps; None: at every validation."""
    log_every: int = 10
    val_frames_per_track: int | None = 8
    """Validation gallery: at most this many evenly spaced frames per track (None: every frame)."""
    amp: bool = True
    """Mixed precision (bfloat16 autocast) on CUDA; ignored on CPU, which always trains in float32."""
    workers: int | None = None
    """DataLoader worker processes (None: from the context / CLI)."""
    grad_clip: float | None = None
