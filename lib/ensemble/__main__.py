from lib.cli import run_main
from lib.ensemble.run import main

raise SystemExit(run_main(main))
