"""``make bench``: run every ``benchmarks/bench_*.py`` and collect ``artifacts/reports/bench.json``.

Each benchmark module exposes ``run(quick: bool) -> list[dict]``; every entry measures our way and the
straightforward way side by side in the same process and run: ``{"name", "ours_s", "baseline_s", "ratio",
"details"}``. The report adds the machine it ran on and the git commit.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from lib.io import git_commit, machine_info, write_json
from lib.paths import ROOT, reports_dir

REQUIRED = ("name", "ours_s", "baseline_s", "ratio")

# The project's speed goals: (goal, entry-name prefix, measured field, "min" | "max" goal, target). Several entries
# of one prefix (the eight paper configurations' training pipelines) are judged by their worst one.
GOALS: tuple[tuple[str, str, str, str, float], ...] = (
    ("motion maps vs the original's literal way", "motion_maps", "ratio", "min", 5.0),
    ("gallery embedding vs the per-crop loop", "gallery_embedding", "ratio", "min", 3.0),
    ("training data pipeline at paper shape, each paper configuration", "train_pipeline_", "ratio", "min", 5.0),
    ("ranking 530 x 530, 8 models, paper widths (seconds)", "ranking_530x530_8_models_paper", "ours_s", "max", 0.020),
)


def judge(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each goal with the measured value (worst entry of its prefix) and whether it is met; a goal with no entry
    (its benchmark failed or was not selected) says so."""
    out = []
    for goal, prefix, field, kind, target in GOALS:
        rows = [e for e in entries if e["name"].startswith(prefix)]
        if not rows:
            out.append({"goal": goal, "target": target, "kind": kind, "measured": None, "met": None,
                        "entries": []})
            continue
        vals = [float(e[field]) for e in rows]
        worst = min(vals) if kind == "min" else max(vals)
        out.append({"goal": goal, "target": target, "kind": kind, "field": field, "measured": worst,
                    "met": worst >= target if kind == "min" else worst <= target,
                    "entries": [e["name"] for e in rows]})
    return out


def discover(only: list[str] | None = None) -> list[str]:
    mods = sorted(p.stem for p in (ROOT / "benchmarks").glob("bench_*.py"))
    return [m for m in mods if not only or any(o in m for o in only)]


def run_all(quick: bool = False, only: list[str] | None = None, out: Path | None = None) -> dict[str, Any]:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    entries: list[dict[str, Any]] = []
    failures: list[dict[str, str]] = []
    for mod_name in discover(only):
        print(f"== benchmarks.{mod_name}", flush=True)
        t0 = time.perf_counter()
        try:
            mod = importlib.import_module(f"benchmarks.{mod_name}")
            results = mod.run(quick=quick)
        except Exception as e:  # one broken benchmark must not hide the others' numbers
            traceback.print_exc()
            failures.append({"module": mod_name, "error": f"{type(e).__name__}: {e}"})
            continue
        for r in results:
            missing = [k for k in REQUIRED if k not in r]
            if missing:
                raise ValueError(f"benchmarks/{mod_name}.py: entry {r.get('name')!r} lacks {missing}")
            r = {"module": mod_name, **r}
            entries.append(r)
            print(f"   {r['name']}: ours {r['ours_s']:.4f} s, baseline {r['baseline_s']:.4f} s, "
                  f"ratio {r['ratio']:.2f}x", flush=True)
        print(f"   ({time.perf_counter() - t0:.1f} s)", flush=True)
    goals = judge(entries)
    for g in goals:
        if g["measured"] is not None:
            op = ">=" if g["kind"] == "min" else "<="
            print(f"goal {'met' if g['met'] else 'NOT MET'}: {g['goal']}: {g['measured']:.4g} (goal {op} "
                  f"{g['target']:g})", flush=True)
    report = {"git_commit": git_commit(), "machine": machine_info(), "quick": quick, "goals": goals,
              "benchmarks": entries, "failures": failures, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_json(out or reports_dir() / "bench.json", report)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lib.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small inputs (a smoke run, not numbers to report)")
    ap.add_argument("--only", nargs="*", help="substrings of benchmark module names")
    ap.add_argument("--out", type=Path, help="output JSON (default artifacts/reports/bench.json)")
    args = ap.parse_args(argv)
    report = run_all(args.quick, args.only, args.out)
    print(f"wrote {args.out or reports_dir() / 'bench.json'}: {len(report['benchmarks'])} entries, "
          f"{len(report['failures'])} failures")
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    from lib.cli import run_main

    raise SystemExit(run_main(main))
