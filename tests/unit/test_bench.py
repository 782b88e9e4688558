"""``make bench``'s goal table: each goal judged by the worst entry of its prefix; a missing benchmark says so."""

from __future__ import annotations

from lib.bench import GOALS, judge


def _e(name: str, ratio: float, ours_s: float = 1.0) -> dict:
    return {"name": name, "ours_s": ours_s, "baseline_s": ours_s * ratio, "ratio": ratio}


def test_goals_take_the_worst_entry_and_name_missing_ones() -> None:
    entries = [_e("motion_maps", 6.0), _e("train_pipeline_a", 9.0), _e("train_pipeline_b", 4.5),
               _e("ranking_530x530_8_models_paper_widths", 40.0, ours_s=0.018),
               _e("ranking_530x530_8_models_cpu_variant_widths", 40.0, ours_s=0.5)]
    got = {g["goal"]: g for g in judge(entries)}
    assert len(got) == len(GOALS)
    motion, gallery, train, ranking = (got[g[0]] for g in GOALS)
    assert motion["met"] is True and motion["measured"] == 6.0
    assert gallery["met"] is None and gallery["measured"] is None  # no gallery entry in this run
    assert train["met"] is False and train["measured"] == 4.5 and train["entries"] == ["train_pipeline_a",
                                                                                        "train_pipeline_b"]
    assert ranking["met"] is True and ranking["measured"] == 0.018  # the CPU-width entry is not this goal's
