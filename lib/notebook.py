"""Helpers that notebooks call: recording metrics, and reading a notebook's declared parameters."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from lib.io import git_commit, write_json


def record_metrics(metrics: dict[str, Any], path: str | os.PathLike[str], notebook: str = "") -> dict[str, Any]:
    """Write a notebook's metrics as JSON (atomically) with the commit and time; return what was written."""
    record = {"notebook": notebook, "metrics": metrics, "git_commit": git_commit(),
              "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_json(path, record)
    return record


def notebook_parameters(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parameters a notebook declares in its ``parameters``-tagged cell: ``{name: default (as source)}``."""
    import papermill as pm

    params = pm.inspect_notebook(str(path))
    if not params:
        raise ValueError(f"{path}: no cell tagged 'parameters'")
    return {name: info["default"] for name, info in params.items()}


def resolve(path: str | os.PathLike[str]) -> Path:
    """Resolve a notebook parameter path (relative to the notebook's folder when run from it)."""
    return Path(path).expanduser().resolve()
