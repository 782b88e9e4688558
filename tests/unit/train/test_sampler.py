"""The step sampler (lib.train.sampler): deterministic passes, and same-colour runs with train.colour_groups."""

from __future__ import annotations

import numpy as np

from lib.train.sampler import StepBatchSampler, global_batch_keys, grouped_order


def test_grouped_order_is_a_permutation_of_same_group_runs() -> None:
    groups = [i % 5 for i in range(53)]
    order = grouped_order(groups, 4, np.random.default_rng(0))
    assert sorted(order.tolist()) == list(range(53))
    runs, i = [], 0
    while i < len(order):  # runs are maximal stretches of one group, at most 4 long unless two runs of one group meet
        j = i
        while j < len(order) and groups[order[j]] == groups[order[i]]:
            j += 1
        runs.append(j - i)
        i = j
    assert np.mean(runs) >= 3  # most batches hold groups of 4 (random order would give runs of ~1.25)
    assert grouped_order(groups, 4, np.random.default_rng(0)).tolist() == order.tolist()


def test_colour_groups_change_the_batches_but_not_what_a_pass_visits() -> None:
    n, b = 40, 8
    groups = [i % 4 for i in range(n)]
    plain = [k.index for s in range(5) for k in global_batch_keys(n, b, 0, s)]
    grouped = [k.index for s in range(5) for k in global_batch_keys(n, b, 0, s, groups=groups, group_size=4)]
    assert sorted(plain) == sorted(grouped) == list(range(n))
    assert plain != grouped
    per_batch = [len({groups[i] for i in grouped[s * b:(s + 1) * b]}) for s in range(5)]
    assert max(per_batch) <= 3  # two runs of 4 (a run may straddle two batches)
    sampler = StepBatchSampler(n, b, 0, 0, 5, groups=groups, group_size=4)
    assert [k.index for batch in sampler for k in batch] == grouped


def test_no_groups_is_the_published_order() -> None:
    keys = global_batch_keys(30, 6, 3, 7)
    perm = np.random.default_rng([3, 1]).permutation(30)
    assert [k.index for k in keys] == perm[12:18].tolist()


def test_training_context_adds_other_views_for_training_only(tmp_path) -> None:
    import json

    import torch

    from lib.families.base import TrainContext
    from lib.train.loop import training_context

    (tmp_path / "train-tracks.json").write_text(json.dumps(
        {"a": {"frames": [], "boxes": [], "nl": ["a red car"], "nl_other_views": ["a red sedan"]}}))
    ctx = TrainContext(data_root=tmp_path, prep_dir=tmp_path, device=torch.device("cpu"))
    assert training_context(ctx, False) is ctx
    train_ctx = training_context(ctx, True)
    assert train_ctx.train_tracks["a"]["nl"] == ["a red car", "a red sedan"]
    assert ctx.train_tracks["a"]["nl"] == ["a red car"]  # validation reads the original
