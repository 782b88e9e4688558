"""benchmarks.recipe_curves: the arms' histories drawn side by side; a missing arm is an error naming its file."""

from __future__ import annotations

import json

import pytest

from benchmarks.recipe_curves import load_history, main


def _arm(root, name: str, val: list[float]) -> None:
    hist = [{"step": s, "loss": 5.0 - s / 100, "lr": 1e-3} for s in range(10, 160, 10)]
    hist += [{"step": 50 * (i + 1), "val_mrr": v} for i, v in enumerate(val)]
    (root / name / "train").mkdir(parents=True)
    (root / name / "train" / "history.json").write_text(json.dumps(hist))


def test_draws_one_line_per_arm_from_paths_or_labels(tmp_path, capsys) -> None:
    _arm(tmp_path, "recipe_s0", [0.3, 0.4, 0.47])
    _arm(tmp_path, "ramp_s0", [0.2, 0.3, 0.35])
    out = tmp_path / "fig" / "curves.png"
    assert main(["cfg", str(tmp_path / "recipe_s0"), f"published maps={tmp_path / 'ramp_s0'}", "--out", str(out),
                 "--random-mrr", "0.05"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "2 arms" in capsys.readouterr().out
    label, history, _ = load_history("cfg", f"published maps={tmp_path / 'ramp_s0'}")
    assert label == "published maps" and [h["val_mrr"] for h in history if "val_mrr" in h] == [0.2, 0.3, 0.35]


def test_a_missing_arm_names_its_history_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no_such_arm.*history\.json.*benchmarks\.ablation"):
        load_history("cfg", str(tmp_path / "no_such_arm"))
