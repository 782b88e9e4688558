"""Command-line alias kept from the flat layout: ``python -m lib.authors_part_two`` runs
``python -m lib.families.instance.authors``."""

from lib.families.instance.authors import *  # noqa: F403
from lib.families.instance.authors import main

if __name__ == "__main__":
    from lib.cli import run_main

    raise SystemExit(run_main(main))
