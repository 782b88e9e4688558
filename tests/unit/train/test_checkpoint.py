"""Which weights a run keeps (``train.checkpoint``): the rules of the original code, exactly."""

from __future__ import annotations

import pytest

from lib.train.checkpoint import CheckpointRule


def _feed(rule: CheckpointRule, losses: list[float], top1: list[float] | None = None) -> list[int]:
    saved = []
    for step, loss in enumerate(losses, start=1):
        logs = {"train_top1": top1[step - 1]} if top1 is not None else {}
        if rule.observe(step, loss, logs):
            saved.append(step)
    return saved


def test_lowest_loss_is_the_net_last_rule() -> None:
    # 2 steps a pass, a save every 2 passes (= every 4 steps): pass means 5, 3, 4, 1, 2, 2.5
    r = CheckpointRule("lowest_loss", steps_per_epoch=2, window=2, save_every_passes=2)
    saved = _feed(r, [5, 5, 3, 3, 4, 4, 1, 1, 2, 2, 2.5, 2.5])
    # new minimum in pass 2 (step 4) -> written at the save of step 4; pass 4 (step 8) -> at step 8; none after
    assert saved == [4, 8] and r.best == 1 and r.best_at == 8 and not r.take_final(12)
    # a minimum after the last save: the final weights are the ones
    r2 = CheckpointRule("lowest_loss", steps_per_epoch=2, window=2, save_every_passes=2)
    assert _feed(r2, [5, 5, 4, 4, 3, 3]) == [4] and r2.take_final(6)


def test_best_train_top1_and_final_and_resume() -> None:
    r = CheckpointRule("best_train_top1", steps_per_epoch=2, window=3)
    assert _feed(r, [1] * 9, [0.1, 0.2, 0.3, 0.9, 0.9, 0.9, 0.5, 0.5, 0.5]) == [3, 6]
    assert r.best == pytest.approx(0.9) and not r.take_final(9)
    again = CheckpointRule("best_train_top1", steps_per_epoch=2, window=3)
    again.load_state_dict(r.state_dict())
    assert again.record() == r.record()
    with pytest.raises(KeyError, match="train_top1"):
        CheckpointRule("best_train_top1", 2, 3).observe(1, 1.0, {})
    final = CheckpointRule("final", 2, 3)
    assert _feed(final, [1, 2, 3]) == [] and final.take_final(3)
    assert not CheckpointRule("best_val_mrr", 2, 3).take_final(3)
