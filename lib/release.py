"""Command-line alias kept from the flat layout: ``python -m lib.release`` runs
``python -m lib.ensemble.release``."""

from lib.ensemble.release import *  # noqa: F403
from lib.ensemble.release import main

if __name__ == "__main__":
    from lib.cli import run_main

    raise SystemExit(run_main(main))
