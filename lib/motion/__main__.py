from lib.cli import run_main
from lib.motion.maps import main

raise SystemExit(run_main(main))
