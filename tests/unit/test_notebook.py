"""lib.notebook: the last cell of a notebook writes the whole metrics record and shows only a few lines; the
parameters cell is read with Python's parser."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from lib.notebook import notebook_parameters, record_metrics


def _notebook(tmp_path: Path, source: str | None) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("import os")]
    if source is not None:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    return path


def test_parameters_are_read_whatever_their_comments_say(tmp_path) -> None:
    # papermill 2.7's line regex drops the second line (a quoted word followed by '=' in its comment) with only a
    # log line; the pipeline then thinks the notebook does not declare it
    source = ('data_root = "artifacts/data/x"  # the folder\n'
              'variant = "ramp"  # read by 04_train\'s configs; "published" = the paper rule\n'
              '\n# a comment line\n'
              'sizes: list[int] = [64,\n    96]  # two lines\n'
              'n_val = None\n')
    assert notebook_parameters(_notebook(tmp_path, source)) == {
        "data_root": '"artifacts/data/x"', "variant": '"ramp"', "sizes": "[64,\n    96]", "n_val": "None"}


@pytest.mark.parametrize(("source", "message"), [
    (None, "no cell tagged 'parameters'"),
    ('x = 1\nprint(x)\n', "line 2: 'print(x)' is not a 'name = value' assignment"),
    ('a, b = 1, 2\n', "line 1: 'a, b = 1, 2' is not a 'name = value' assignment"),
    ('x = 1\nx = 2\n', "line 2: 'x' is assigned twice"),
    ('x = (1\n', "parameters cell, line 1:"),
])
def test_a_parameters_cell_that_is_not_plain_assignments_is_an_error_naming_the_line(tmp_path, source,
                                                                                     message) -> None:
    path = _notebook(tmp_path, source)
    with pytest.raises(ValueError) as err:
        notebook_parameters(path)
    assert str(path) in str(err.value) and message in str(err.value)


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
