"""Training-time text augmentation and flip (``data.train_aug``), with and without, on the ``default`` preset.

For each configuration, :mod:`benchmarks.ablation` with two arms and the same seed: ``off`` (as every configuration
ships) and ``on`` (:data:`AUG`); it reports val MRR, test MRR with a 95 % bootstrap interval over queries, the
paired difference (on - off) with its interval and p-value, and the attribute read-out of the embeddings. Part One
runs with ``data.cache_text: false`` in both arms (its published rule: the word augmenters change sentences, which
cached text features could not follow).

    .venv/bin/python -m benchmarks.ablation_train_aug [--configs a,b] [--preset default]

writes ``benchmarks/results/train_aug_<config>.json``. Needs the preset prepared (``make reproduce`` has done it).
"""

from __future__ import annotations

import argparse
import json

from benchmarks import ablation

AUG = {"p_synonym": 0.3, "p_swap": 0.1, "p_delete": 0.1, "p_spelling": 0.1, "p_flip": 0.5}
CONFIGS = ("motion_SE_3CLS_nonlpaug_288_cpu", "b48_lr1_w20_clip_e120_dd_cpu")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ablation_train_aug", description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--preset", default="default")
    args = ap.parse_args(argv)
    for name in args.configs.split(","):
        base = {"data": {"cache_text": False}} if "motion_" in name else {}
        on = ablation._merge(base, {"data": {"train_aug": AUG}})
        ablation.main([name, "--arm", f"off={json.dumps(base)}", "--arm", f"on={json.dumps(on)}",
                       "--preset", args.preset, "--out", f"benchmarks/results/train_aug_{name}.json"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
