"""benchmarks.readout_probes on the tiny preset: both probes score every attribute on the test split, and a dataset
without the generator's truth is an error naming the missing file."""

from __future__ import annotations

import json

import pytest

from benchmarks.readout_probes import main, probes


def test_probes_score_each_attribute_of_the_tiny_preset(tiny_dataset, tmp_path, capsys) -> None:
    out = tmp_path / "probes.json"
    assert main(["--data-root", str(tiny_dataset), "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    n_queries = len(json.loads((tiny_dataset / "test-queries.json").read_text()))
    assert rec["text"]["test_sentences"] >= n_queries and set(rec["text"]["accuracy"]) == {"colour", "type",
                                                                                           "manoeuvre"}
    assert all(0.0 <= v <= 1.0 for v in rec["text"]["accuracy"].values())
    g = rec["box_geometry"]
    assert g["test_tracks"] == len(json.loads((tiny_dataset / "test-tracks.json").read_text()))
    assert 0.0 < g["type_majority"] <= 1.0 and 0.0 <= g["type_accuracy"] <= 1.0
    assert "written:" in capsys.readouterr().out


def test_a_dataset_without_the_generator_truth_is_refused(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"synthetic-labels\.json.*generator's truth"):
        probes(tmp_path)
