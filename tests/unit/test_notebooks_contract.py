"""Every numbered notebook follows the contract: stored without outputs, one `parameters` cell whose defaults are
the small CPU setup with a `metrics_path`, thin code, and a last cell that records metrics."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from lib.paths import NOTEBOOKS
from lib.pipeline import STEPS

NOTEBOOK_FILES = sorted(NOTEBOOKS.glob("*.ipynb"))


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def test_every_pipeline_step_has_a_notebook() -> None:
    missing = [s for s in STEPS if not (NOTEBOOKS / f"{s}.ipynb").exists()]
    assert not missing, f"missing notebooks: {missing}"


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.name)
def test_committed_without_outputs(path: Path) -> None:
    dirty = [i for i, c in enumerate(_cells(path)) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs or execution counts; strip them before committing"


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.name)
def test_one_parameters_cell_with_metrics_path(path: Path) -> None:
    cells = _cells(path)
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters', expected exactly 1"
    tree = ast.parse("".join(tagged[0]["source"]))
    names = {t.id for node in tree.body if isinstance(node, ast.Assign | ast.AnnAssign)
             for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)}
    assert "metrics_path" in names, f"{path.name}: the parameters cell must declare metrics_path"
    other = [n for n in tree.body if not isinstance(n, ast.Assign | ast.AnnAssign | ast.Expr)]
    assert not other, f"{path.name}: the parameters cell should only assign defaults"


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.name)
def test_last_code_cell_records_metrics(path: Path) -> None:
    code = [c for c in _cells(path) if c["cell_type"] == "code"]
    assert "record_metrics(" in "".join(code[-1]["source"]), f"{path.name}: last code cell must record metrics"


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.name)
def test_notebook_cells_stay_thin(path: Path) -> None:
    """Logic lives in lib: no function or class definitions and no long cells in notebooks."""
    for i, c in enumerate(_cells(path)):
        if c["cell_type"] != "code":
            continue
        src = "".join(c["source"])
        tree = ast.parse("\n".join(line for line in src.splitlines() if not line.lstrip().startswith(("%", "!"))))
        defs = [n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef)]
        assert not defs, f"{path.name} cell {i}: defines {defs}; move it to lib/"
        assert len(src.splitlines()) <= 40, f"{path.name} cell {i}: {len(src.splitlines())} lines; move logic to lib/"


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.name)
def test_kernelspec(path: Path) -> None:
    ks = json.loads(path.read_text())["metadata"].get("kernelspec", {})
    assert ks.get("name") == "cfnl", f"{path.name}: kernelspec name should be 'cfnl', got {ks.get('name')!r}"


STAGE_PACKAGES = {"00_data": "lib.data", "01_frames": "lib.frames", "02_motion_maps": "lib.motion",
                  "03_text_augmentation": "lib.text", "04_train": "lib.train", "05_embed": "lib.embed",
                  "06_ensemble": "lib.ensemble"}


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.name)
def test_imports_one_stage_package(path: Path) -> None:
    """A notebook imports its own stage package of ``lib`` (its submodules included) and ``lib.notebook``."""
    stage = STAGE_PACKAGES[path.stem]
    used = set()
    for c in _cells(path):
        if c["cell_type"] != "code":
            continue
        src = "".join(line for line in c["source"] if not line.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(src)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            used.update(m for m in mods if m == "lib" or m.startswith("lib."))
    other = sorted(m for m in used if m != "lib.notebook" and m != stage and not m.startswith(stage + "."))
    assert not other, f"{path.name}: imports {other}; a notebook uses its stage package {stage} and lib.notebook"
