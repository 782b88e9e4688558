"""Training curves: loss (per logged step) and val MRR (per validation) with the random baseline."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lib.io import save_figure


def plot_curves(history: Sequence[dict[str, Any]], path: str | os.PathLike[str], title: str = "",
                random_mrr: float | None = None) -> Path:
    """Loss and val MRR by step. Where the family scales the loss during its warm-up (Part Two: a factor from 0.1 to
    1, logged as ``loss_factor``), the logged loss is the scaled one, as the original logged it: it rises over the
    warm-up although the model improves; the panel says so."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    train = [h for h in history if "loss" in h]
    val = [h for h in history if "val_mrr" in h]
    fig = Figure(figsize=(10, 3.6))  # no pyplot: the caller's backend (e.g. a notebook's inline one) is untouched
    FigureCanvasAgg(fig)
    a, b = fig.subplots(1, 2)
    if train:
        a.plot([h["step"] for h in train], [h["loss"] for h in train], lw=1)
    a.set_xlabel("step")
    a.set_ylabel("training loss")
    scaled = any("loss_factor" in h and h["loss_factor"] < 1.0 for h in train)
    a.set_title("loss x warm-up factor (rises while the factor goes 0.1 -> 1)" if scaled else "loss", fontsize=9)
    if val:
        b.plot([h["step"] for h in val], [h["val_mrr"] for h in val], marker="o", lw=1, label="val MRR")
    if random_mrr is not None:
        b.axhline(random_mrr, color="gray", ls="--", lw=1, label="random ranking")
    b.set_xlabel("step")
    b.set_ylabel("MRR")
    b.set_ylim(0, 1)
    b.set_title("validation")
    b.legend(loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)
