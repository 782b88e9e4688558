"""``python -m lib.train PARAMS.yaml [--max-steps N] [--out DIR] [--data-root D] [--prep-dir P]``

Also under ``torchrun --standalone --nproc_per_node K -m lib.train ...`` (DistributedDataParallel).
"""

from __future__ import annotations

import argparse
import json
import sys

from lib.config import parse_override
from lib.families import load_config
from lib.paths import data_dir, runs_dir
from lib.paths import prep_dir as prep_dir_of


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lib.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="params YAML (path or configuration name)")
    p.add_argument("--max-steps", type=int, default=None, help="steps to train (default: from the config)")
    p.add_argument("--out", default=None, help="output folder (default: ARTIFACTS/runs/cli/train/<name>)")
    p.add_argument("--data-root", default=None, help="CityFlow-NL layout root (default: ARTIFACTS/data/tiny)")
    p.add_argument("--prep-dir", default=None, help="preprocessing folder (default: ARTIFACTS/prep/tiny)")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers")
    p.add_argument("--device", default=None, help="cpu / cuda (default: cuda when available)")
    p.add_argument("--override", default=None, help='JSON of nested overrides, e.g. \'{"train": {"lr": 0.001}}\'')
    p.add_argument("--on-config-change", choices=("restart", "error"), default="restart",
                   help="when OUT holds a checkpoint of another configuration: start over (default) or stop")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    cfg = load_config(a.config, parse_override(a.override))
    out = a.out or str(runs_dir("cli") / "train" / cfg.name)
    data_root = a.data_root or str(data_dir("tiny"))
    prep_dir = a.prep_dir or str(prep_dir_of("tiny"))
    from lib.train.loop import train

    metrics = train(cfg, data_root, prep_dir, out, max_steps=a.max_steps, workers=a.workers, device=a.device,
                    on_config_change=a.on_config_change,
                    progress=not a.no_progress)
    if metrics:
        print(json.dumps({k: metrics[k] for k in ("config", "val_mrr", "random_mrr", "best_step", "steps",
                                                  "train_time_s", "samples_per_s")}))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    from lib.cli import run_main

    raise SystemExit(run_main(main))
