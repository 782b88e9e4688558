"""Figures of notebook 03: what the attribute parser reads from the sentences."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np


def attribute_counts(parsed: Sequence[Any]) -> dict[str, Counter[str]]:
    """Counts of parsed colour / type / manoeuvre (``None`` = not found) over :class:`Attributes` objects."""
    return {"colour": Counter(str(a.colour) for a in parsed),
            "vehicle_type": Counter(str(a.vehicle_type) for a in parsed),
            "manoeuvre": Counter(str(a.manoeuvre) for a in parsed)}


def attribute_bars(counts: dict[str, Counter[str]], title: str = "") -> Any:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(counts), figsize=(5 * len(counts), 3.2), constrained_layout=True)
    for ax, (name, c) in zip(np.atleast_1d(axes), counts.items()):
        keys = sorted(c, key=lambda k: -c[k])
        ax.bar(keys, [c[k] for k in keys], color=["lightgray" if k == "None" else "tab:blue" for k in keys])
        ax.set_title(f"{title} {name}".strip())
        ax.tick_params(axis="x", rotation=45)
    return fig
