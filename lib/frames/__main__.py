from lib.cli import run_main
from lib.frames.extract import main

raise SystemExit(run_main(main))
