"""``python -m lib.synthetic --preset {tiny,default,large} --seed N --out DIR``: generate a synthetic CityFlow-NL."""

from __future__ import annotations

import argparse
import json

from lib.synthetic.dataset import generate
from lib.synthetic.presets import PRESETS


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lib.synthetic", description=__doc__)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="output folder (default: artifacts/data/<preset>)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing non-empty output folder")
    ap.add_argument("--workers", type=int, default=0, help="processes rendering cameras (0 = automatic)")
    ap.add_argument("--n-train", type=int, default=None, help="override the preset's number of training tracks")
    ap.add_argument("--n-test", type=int, default=None, help="override the preset's number of test tracks")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    overrides = {"workers": args.workers}
    if args.n_train is not None:
        overrides["n_train"] = args.n_train
    if args.n_test is not None:
        overrides["n_test"] = args.n_test
    report = generate(args.preset, args.seed, args.out, overwrite=args.overwrite, progress=not args.quiet,
                      **overrides)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    from lib.cli import run_main

    raise SystemExit(run_main(main))
