"""Progress bars and the headless flag: one place decides how a bar is drawn.

A notebook run by the runner (``lib.pipeline``, papermill) has nobody watching it live and is read later as a saved
``.ipynb`` or its HTML export. Widget bars (``tqdm.auto`` in a kernel) keep their state in the widget model, which a
saved notebook does not carry, so they read "0%" forever. The runner therefore starts its kernels with
``CFNL_HEADLESS=1``: bars are then plain text on stdout (the saved output ends with each bar's final state), and
interactive widgets such as the search box are not drawn. Everywhere else (JupyterLab, a terminal) ``tqdm.auto``
chooses: widget bars in a live kernel, text in a terminal.
"""

from __future__ import annotations

import os
import sys
from typing import Any

HEADLESS_ENV = "CFNL_HEADLESS"


def headless() -> bool:
    """True inside a kernel started by the runner (``CFNL_HEADLESS=1``): no live reader, no widgets."""
    return os.environ.get(HEADLESS_ENV, "") not in ("", "0")


def progress_bar(iterable: Any = None, **kwargs: Any) -> Any:
    """A ``tqdm`` bar: text on stdout when :func:`headless` (finished bars stay, at most one update a second),
    else ``tqdm.auto``'s choice."""
    if headless():
        from tqdm.std import tqdm

        kwargs["leave"] = True
        kwargs.setdefault("file", sys.stdout)
        kwargs.setdefault("mininterval", 1.0)
        kwargs.setdefault("ncols", 100)
        return tqdm(iterable, **kwargs)
    from tqdm.auto import tqdm

    return tqdm(iterable, **kwargs)
