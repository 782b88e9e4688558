"""Deterministic data order by step: the global batch of step ``t`` is a pure function of (seed, t).

Epoch ``e`` visits the train split in the order ``default_rng([seed, e]).permutation(n)``; step ``t`` of the run is
batch ``t % steps_per_epoch`` of epoch ``t // steps_per_epoch``. Every sample also gets its own seed (for its random
frame, sentence, augmentation) from ``SeedSequence([seed, e, position])``. Rank ``r`` of ``K`` takes the ``r``-th
contiguous slice of each global batch, so K processes see exactly the samples of one process, and a resumed run
starts again at the step it stopped at. With ``train.colour_groups: k`` the pass's order is
:func:`grouped_order` (runs of k same-colour tracks) drawn from the same generator.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from lib.families.base import SampleKey


def steps_per_epoch(n: int, global_batch: int, drop_last: bool = True) -> int:
    """Steps of one pass over ``n`` samples: ``n // B`` with ``drop_last``, else ``ceil(n / B)`` (a last batch of
    one sample is dropped all the same: BatchNorm cannot train on it)."""
    if global_batch <= 0:
        raise ValueError(f"batch_size must be positive, got {global_batch}")
    if n < global_batch:
        raise ValueError(f"the train split has {n} tracks, fewer than one batch of {global_batch}: lower "
                         f"train.batch_size (an override such as {{'train': {{'batch_size': {n}}}}})")
    full, rest = divmod(n, global_batch)
    return full + (1 if (not drop_last and rest > 1) else 0)


def grouped_order(groups: Sequence[int], group_size: int, rng: np.random.Generator) -> np.ndarray:
    """A pass over ``len(groups)`` samples in runs of ``group_size`` samples of one group: each group's samples
    shuffled and cut into runs (its last run shorter), then the runs shuffled. Every sample appears once."""
    g = np.asarray(groups)
    runs: list[np.ndarray] = []
    for label in np.unique(g):
        members = rng.permutation(np.flatnonzero(g == label))
        runs += [members[i:i + group_size] for i in range(0, len(members), group_size)]
    return np.concatenate([runs[j] for j in rng.permutation(len(runs))]) if runs else np.zeros(0, dtype=np.int64)


def global_batch_keys(n: int, global_batch: int, seed: int, step: int, drop_last: bool = True,
                      groups: Sequence[int] | None = None, group_size: int = 0) -> list[SampleKey]:
    spe = steps_per_epoch(n, global_batch, drop_last)
    epoch, within = divmod(step, spe)
    rng = np.random.default_rng([seed, epoch])
    perm = grouped_order(groups, group_size, rng) if groups is not None and group_size > 0 else rng.permutation(n)
    lo = within * global_batch
    idx = perm[lo:lo + global_batch]
    # the seeds of a full batch are those of every earlier version (a shorter last batch takes the first ones)
    seeds = np.random.default_rng([seed, epoch, within, 7919]).integers(0, 2**62, size=global_batch)
    return [SampleKey(int(i), int(s)) for i, s in zip(idx, seeds)]


class StepBatchSampler(Sampler[list[SampleKey]]):
    """Yields this rank's shard of the global batch for steps ``start_step .. end_step - 1``."""

    def __init__(self, n: int, global_batch: int, seed: int, start_step: int, end_step: int,
                 rank: int = 0, world_size: int = 1, drop_last: bool = True, groups: Sequence[int] | None = None,
                 group_size: int = 0) -> None:
        if global_batch % world_size:
            raise ValueError(f"train.batch_size {global_batch} is not divisible by the {world_size} processes")
        steps_per_epoch(n, global_batch, drop_last)  # validates
        self.n, self.global_batch, self.seed, self.drop_last = n, global_batch, seed, drop_last
        self.start_step, self.end_step = start_step, end_step
        self.rank, self.world_size = rank, world_size
        self.local_batch = global_batch // world_size
        if groups is not None and len(groups) != n:
            raise ValueError(f"{len(groups)} group labels for {n} samples")
        self.groups, self.group_size = (list(groups) if groups is not None else None), group_size

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step)

    def __iter__(self) -> Iterator[list[SampleKey]]:
        for step in range(self.start_step, self.end_step):
            keys = global_batch_keys(self.n, self.global_batch, self.seed, step, self.drop_last, self.groups,
                                     self.group_size)
            if len(keys) == self.global_batch:
                lo = self.rank * self.local_batch
                yield keys[lo:lo + self.local_batch]
            else:  # the shorter last batch of a pass: contiguous, nearly equal shards
                yield [keys[i] for i in np.array_split(np.arange(len(keys)), self.world_size)[self.rank]]
