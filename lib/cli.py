"""The one shared door of every command line: user errors as one line and exit status 2, bugs as tracebacks.

``raise SystemExit(run_main(main))`` in every ``__main__``. A user error (:data:`lib.errors.USER_ERRORS`: a missing
or malformed file, a bad box, a missing field, a bad parameter, a wrong or truncated checkpoint) prints
``error: <one line naming the file, track and field>`` on stderr and returns 2. ``--debug`` on the command line (it
is removed before ``main`` sees the arguments) or ``CFNL_DEBUG=1`` shows the traceback instead. Any other exception
is a programming error and propagates with its traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from lib.errors import USER_ERRORS

DEBUG_FLAG = "--debug"
DEBUG_ENV = "CFNL_DEBUG"


def debug_enabled(argv: Sequence[str] | None = None) -> bool:
    args = sys.argv[1:] if argv is None else list(argv)
    return DEBUG_FLAG in args or os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def one_line(exc: BaseException) -> str:
    """The exception's message as one line (an exception may offer its own ``one_line()``)."""
    custom = getattr(exc, "one_line", None)
    text = custom() if callable(custom) else str(exc)
    if isinstance(exc, OSError) and not callable(custom) and exc.filename is not None and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    return lines[0] if len(lines) == 1 else f"{lines[0]} (+{len(lines) - 1} more line(s); --debug shows all)"


def run_main(main: Callable[[list[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run ``main(argv)``; a user error becomes one line on stderr and exit status 2 (see the module docstring)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = debug_enabled(args)
    args = [a for a in args if a != DEBUG_FLAG]
    if debug:
        return main(args)
    try:
        return main(args)
    except USER_ERRORS as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
