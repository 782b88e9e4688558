"""Progress bars and the headless flag: one place decides how a bar is drawn.

A notebook run by the runner (``lib.pipeline``, papermill) has nobody watching it live and is read later as a saved
``.ipynb`` or its HTML export. Widget bars (``tqdm.auto`` in a kernel) keep their state in the widget model, which a
saved notebook does not carry, so they read "0%" forever; text bars store every redraw (``\r`` + line), which the
HTML export shows as one line per redraw. The runner therefore starts its kernels with ``CFNL_HEADLESS=1``: each
bar then writes one line of plain text on stdout, its final state (nobody reads the kernel's output live), and
interactive widgets such as the search box are not drawn. Everywhere else (JupyterLab, a terminal) ``tqdm.auto``
chooses: widget bars in a live kernel, text in a terminal.
"""

from __future__ import annotations

import io
import os
import sys
from typing import Any

HEADLESS_ENV = "CFNL_HEADLESS"


def headless() -> bool:
    """True inside a kernel started by the runner (``CFNL_HEADLESS=1``): no live reader, no widgets."""
    return os.environ.get(HEADLESS_ENV, "") not in ("", "0")


class FinalState(io.TextIOBase):
    """A text stream for bars: of each line, only what follows its last carriage return reaches ``out``, when the
    line ends; the redraws of a bar vanish and its final state stays."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.line = ""

    def write(self, s: str) -> int:
        *done, self.line = (self.line + s).split("\n")
        for line in done:
            self.out.write(line.rsplit("\r", 1)[-1] + "\n")
        self.line = self.line.rsplit("\r", 1)[-1]
        return len(s)

    def flush(self) -> None:
        self.out.flush()

    @property
    def encoding(self) -> str:  # tqdm draws unicode blocks when the stream can take them
        return getattr(self.out, "encoding", None) or "utf-8"


def progress_bar(iterable: Any = None, **kwargs: Any) -> Any:
    """A ``tqdm`` bar: when :func:`headless`, one line of text on stdout with the bar's final state (kept even when
    ``leave=False`` is asked for); else ``tqdm.auto``'s choice."""
    if headless():
        from tqdm.std import tqdm

        kwargs["leave"] = True
        kwargs["file"] = FinalState(kwargs.get("file") or sys.stdout)
        kwargs.setdefault("mininterval", 1.0)
        kwargs.setdefault("ncols", 100)
        return tqdm(iterable, **kwargs)
    from tqdm.auto import tqdm

    return tqdm(iterable, **kwargs)
