"""Helpers that notebooks call: recording metrics, and reading a notebook's declared parameters."""

from __future__ import annotations

import os
import textwrap
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lib.io import git_commit, write_json


def record_metrics(metrics: dict[str, Any], path: str | os.PathLike[str], notebook: str = "",
                   headline: Sequence[str] | None = None) -> None:
    """Write a notebook's metrics as JSON (atomically) with the commit and time, and print a short summary.

    The whole record goes to ``path``; the notebook shows a few lines (:func:`metrics_summary`): the values named
    in ``headline`` (dotted paths into ``metrics``, e.g. ``"submission.mrr"``), or else the top-level numbers and
    strings, and the names of the nested entries that only the JSON holds."""
    record = {"notebook": notebook, "metrics": metrics, "git_commit": git_commit(),
              "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_json(path, record)
    print(metrics_summary(metrics, path, notebook, headline))


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_short(x) for x in v[:3]) + (f", ... ({len(v)})" if len(v) > 3 else "") + "]"
    return str(v)


def _lookup(metrics: Mapping[str, Any], dotted: str) -> Any:
    v: Any = metrics
    for part in dotted.split("."):
        if not isinstance(v, Mapping) or part not in v:
            return "(absent)"
        v = v[part]
    return v


def metrics_summary(metrics: Mapping[str, Any], path: str | os.PathLike[str], notebook: str = "",
                    headline: Sequence[str] | None = None, max_values: int = 8) -> str:
    """A few lines about a metrics record: where it was written, its headline values, what else it holds."""
    if headline is not None:
        shown = {k: _lookup(metrics, k) for k in headline}
    else:
        shown = {k: v for k, v in metrics.items() if v is None or isinstance(v, int | float | str | bool)}
    more = len(shown) - max_values
    shown = dict(list(shown.items())[:max_values])
    nested = [k for k, v in metrics.items() if isinstance(v, Mapping | list) and k not in shown]
    lines = [f"{notebook or 'metrics'}: {len(metrics)} entries written to {path}"]
    values = ", ".join(f"{k} = {_short(v)}" for k, v in shown.items()) + (f", ... ({more} more)" if more > 0 else "")
    if values:
        lines += textwrap.wrap(values, 110, initial_indent="  ", subsequent_indent="  ")
    if nested:
        lines += textwrap.wrap("also in the JSON: " + ", ".join(nested), 110, initial_indent="  ",
                               subsequent_indent="  ")
    return "\n".join(lines)


def notebook_parameters(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parameters a notebook declares in its ``parameters``-tagged cell: ``{name: default (as source)}``.

    The cell is read with Python's own parser, not papermill's line regex (which drops, with only a log line, a
    parameter whose comment holds a quoted word followed by ``=``). Every statement of the cell must be one
    ``name = value`` or ``name: type = value``; anything else is an error naming the notebook and the line."""
    import ast

    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ValueError(f"{path}: no cell tagged 'parameters'")
    if len(cells) > 1:
        raise ValueError(f"{path}: {len(cells)} cells tagged 'parameters' (one expected)")
    source = cells[0].source
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise ValueError(f"{path}: parameters cell, line {e.lineno}: {e.msg}") from None
    params: dict[str, Any] = {}
    for stmt in tree.body:
        target = (stmt.targets[0] if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                  else stmt.target if isinstance(stmt, ast.AnnAssign) and stmt.value is not None else None)
        if not isinstance(target, ast.Name):
            line = source.splitlines()[stmt.lineno - 1].strip()
            raise ValueError(f"{path}: parameters cell, line {stmt.lineno}: {line!r} is not a 'name = value' "
                             f"assignment")
        if target.id in params:
            raise ValueError(f"{path}: parameters cell, line {stmt.lineno}: {target.id!r} is assigned twice")
        params[target.id] = ast.get_source_segment(source, stmt.value)
    return params


def resolve(path: str | os.PathLike[str]) -> Path:
    """Resolve a notebook parameter path (relative to the notebook's folder when run from it)."""
    return Path(path).expanduser().resolve()
