"""Training curves of several ablation arms side by side: val MRR and training loss by step, one line per arm.

Reads the ``train/history.json`` that :mod:`benchmarks.ablation` leaves in each arm's run folder
(``artifacts/runs/ablation/<CONFIG>/<ARM>_s<SEED>``), so the figure shows the runs a results JSON summarises:

    .venv/bin/python -m benchmarks.recipe_curves CONFIG ARM_DIR [LABEL=ARM_DIR ...] --out docs/figures/x.png
        [--title TEXT] [--random-mrr 0.052]

``ARM_DIR`` is a folder name under ``artifacts/runs/ablation/<CONFIG>`` (``recipe_s0``) or a path; ``LABEL=`` names
its line in the legend (default: the folder name).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any


def load_history(config: str, arm: str) -> tuple[str, list[dict[str, Any]], Path]:
    """``(label, history, path)`` of one arm given as ``[LABEL=]DIR``."""
    from lib.io import read_json
    from lib.paths import runs_dir

    label, _, where = arm.rpartition("=")
    folder = Path(where)
    if not folder.is_dir():
        folder = runs_dir("ablation") / config / where
    path = folder / "train" / "history.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no training history for arm {where!r} of {config} (run "
                                f"`python -m benchmarks.ablation {config} --arm ...` first)")
    history = read_json(path)
    if not isinstance(history, list) or not history:
        raise ValueError(f"{path}: expected a non-empty list of logged steps")
    return label or folder.name, history, path


def plot_arms(arms: list[tuple[str, list[dict[str, Any]]]], out: str | os.PathLike[str], title: str = "",
              random_mrr: float | None = None) -> Path:
    """Two panels (val MRR by step, training loss by step), one line per arm, saved atomically to ``out``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from lib.io import save_figure

    fig = Figure(figsize=(11, 3.8))
    FigureCanvasAgg(fig)
    a, b = fig.subplots(1, 2)
    for label, history in arms:
        val = [h for h in history if "val_mrr" in h]
        line, = a.plot([h["step"] for h in val], [h["val_mrr"] for h in val], marker="o", ms=3, lw=1.2, label=label)
        train = [h for h in history if "loss" in h]
        b.plot([h["step"] for h in train], [h["loss"] for h in train], lw=1, color=line.get_color(), label=label)
    if random_mrr is not None:
        a.axhline(random_mrr, color="gray", ls="--", lw=1, label="random ranking")
    a.set(xlabel="step", ylabel="val MRR", ylim=(0, 1), title="validation (during training)")
    b.set(xlabel="step", ylabel="training loss", title="training loss (logged steps)")
    a.legend(loc="upper left", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out, dpi=100)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.recipe_curves", description=__doc__.split("\n\n")[0])
    ap.add_argument("config")
    ap.add_argument("arms", nargs="+", help="[LABEL=]ARM_DIR, a folder under artifacts/runs/ablation/CONFIG or a path")
    ap.add_argument("--out", required=True)
    ap.add_argument("--title", default="")
    ap.add_argument("--random-mrr", type=float, default=None)
    args = ap.parse_args(argv)
    arms = [load_history(args.config, a) for a in args.arms]
    path = plot_arms([(label, h) for label, h, _ in arms], args.out, args.title or args.config, args.random_mrr)
    print(f"written: {path} ({len(arms)} arms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
