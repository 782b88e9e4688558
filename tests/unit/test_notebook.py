"""lib.notebook: the last cell of a notebook writes the whole metrics record and shows only a few lines."""

from __future__ import annotations

import json

from lib.notebook import record_metrics


def test_record_metrics_writes_everything_and_prints_a_short_summary(tmp_path, capsys) -> None:
    metrics = {"config": "b48", "val_mrr": 0.39281234, "steps": 200,
               "configs": {f"c{i}": {"test": {"mrr": i / 10}} for i in range(40)},
               "submission": {"variant": "published", "mrr": 0.2242}}
    out = tmp_path / "m" / "06.json"
    assert record_metrics(metrics, out, notebook="06_ensemble") is None
    assert json.loads(out.read_text())["metrics"] == metrics
    shown = capsys.readouterr().out.splitlines()
    assert len(shown) <= 4 and str(out) in shown[0]
    assert "val_mrr = 0.3928" in shown[1] and "configs, submission" in shown[-1]
    record_metrics(metrics, out, notebook="06_ensemble", headline=["submission.mrr", "submission.nope"])
    shown = capsys.readouterr().out
    assert "submission.mrr = 0.2242" in shown and "submission.nope = (absent)" in shown and "val_mrr" not in shown
