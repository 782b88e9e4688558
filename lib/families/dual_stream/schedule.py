"""Learning-rate schedules expressed in steps.

The published Part One schedule is given in "epochs" of 30 passes over the train set (40 such epochs, a linear
warm-up from 1e-7 over 40 passes, then x0.1 every 8 epochs = 240 passes). Our configurations state it in passes
(``epochs: 1200``, ``warmup_epochs: 40``, ``lr_decay_every_epochs: 240``) and :func:`epochs_to_steps` turns passes
into steps with the run's ``steps_per_epoch`` (= ``ceil(len(train) / batch_size)``: the original kept the last
partial batch, ``train.drop_last: false``); explicit ``*_steps`` fields win. The step decay counts from the END of
the warm-up, as the original's warm-up wrapper steps its StepLR with ``step - warmup`` (docs/reference.md P1.4):
``lr(t) = base * gamma ** ((t - warmup_steps) // decay_steps)`` once ``t >= warmup_steps``
(``train.lr_decay_from: start`` counts from step 0 instead).
"""

from __future__ import annotations

from collections.abc import Callable


def epochs_to_steps(epochs: float, steps_per_epoch: int) -> int:
    return max(1, int(round(epochs * steps_per_epoch)))


def warmup_step_decay(warmup_steps: int, warmup_start_ratio: float, decay_every: int | None, gamma: float,
                      from_warmup_end: bool = True) -> Callable[[int], float]:
    """LR factor of step ``t`` (0-based, before the update): linear warm-up from ``warmup_start_ratio`` to 1 over
    ``warmup_steps`` steps, then ``gamma ** ((t - warmup_steps) // decay_every)`` (``from_warmup_end``, published)
    or ``gamma ** (t // decay_every)``; no decay when ``decay_every`` is None."""
    if warmup_steps < 0 or (decay_every is not None and decay_every <= 0):
        raise ValueError(f"invalid schedule: warmup_steps={warmup_steps}, decay_every={decay_every}")

    def factor(t: int) -> float:
        if t < warmup_steps:
            return warmup_start_ratio + (1.0 - warmup_start_ratio) * t / warmup_steps
        if not decay_every:
            return 1.0
        return gamma ** ((t - warmup_steps if from_warmup_end else t) // decay_every)

    return factor
