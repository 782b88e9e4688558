"""Which CPU kernels change our numbers, and what pinning them costs (issue 15, item 9).

PyTorch picks its vectorised ATen kernels by the CPU (``ATEN_CPU_CAPABILITY``: default / avx2 / avx512), MKL its
BLAS code path (``MKL_CBWR``: conditional numerical reproducibility), oneDNN its convolutions (``ONEDNN_MAX_CPU_ISA``).
A float-level difference in one step grows over a training run, so two machines with other instruction sets can
train different models from the same seed. This benchmark runs, for each setting of :data:`SETTINGS`, in a fresh
process (the variables are read when torch loads):

1. **ops** — each operation the two families use, on fixed random inputs, forward and backward; its output and
   gradient are compared bit for bit with the native setting (the machine's best kernels);
2. **training** — ``--steps`` training steps of one Part One and one Part Two CPU variant on the prepared ``default``
   preset; the final weights (tensors, not file hashes: safetensors headers vary) and the last logged loss are
   compared with the native setting, and the time per step gives the cost of pinning.

    .venv/bin/python -m benchmarks.cpu_kernels [--steps 30] [--out benchmarks/results/cpu_kernels.json]

Run it with nothing else on the machine (times are compared across settings).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SETTINGS: dict[str, dict[str, str]] = {
    "native": {},
    "aten_avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "aten_default": {"ATEN_CPU_CAPABILITY": "default"},
    "mkl_cbwr_compatible": {"MKL_CBWR": "COMPATIBLE"},
    "mkl_cbwr_avx2": {"MKL_CBWR": "AVX2"},
    "onednn_avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "threads_1": {"OMP_NUM_THREADS": "1"},
    "pinned_avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
}
CONFIGS = ("motion_effb3_NOCLS_nlpaug_320_cpu", "b48_lr1_w20_clip_e120_dd_cpu")


def _ops() -> dict[str, Any]:
    """name -> (function of a tensor, input shape): the operations of both families."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    torch.manual_seed(0)
    conv3 = nn.Conv2d(16, 32, 3, padding=1)
    dw = nn.Conv2d(32, 32, 3, padding=1, groups=32)
    conv1 = nn.Conv2d(32, 64, 1)
    stem = nn.Conv2d(3, 24, 7, stride=2, padding=3)
    bn = nn.BatchNorm2d(32)
    lin = nn.Linear(384, 256)
    ln = nn.LayerNorm(384)
    attn = nn.MultiheadAttention(384, 6, batch_first=True)
    return {
        "conv3x3 (Part One, Part Two)": (conv3, (8, 16, 24, 24)),
        "depthwise conv (Part One: EfficientNet / MobileNet)": (dw, (8, 32, 24, 24)),
        "pointwise conv 1x1": (conv1, (8, 32, 24, 24)),
        "stem conv 7x7 stride 2 (Part Two: ResNet)": (stem, (4, 3, 64, 64)),
        "batch norm (train mode)": (bn.train(), (8, 32, 12, 12)),
        "SiLU": (nn.SiLU(), (8, 32, 24, 24)),
        "hard-swish": (nn.Hardswish(), (8, 32, 24, 24)),
        "ReLU": (nn.ReLU(), (8, 32, 24, 24)),
        "sigmoid (squeeze-excite)": (nn.Sigmoid(), (8, 32, 1, 1)),
        "GELU (text encoder)": (nn.GELU(), (8, 16, 384)),
        "layer norm (text encoder)": (ln, (8, 16, 384)),
        "self-attention (text encoder)": (lambda x: attn(x, x, x, need_weights=False)[0], (8, 16, 384)),
        "linear / matmul": (lin, (64, 384)),
        "softmax cross-entropy": (lambda x: F.cross_entropy(x, torch.arange(x.shape[0]) % x.shape[1]), (64, 440)),
        "L2 normalise": (lambda x: F.normalize(x, dim=-1), (64, 256)),
        "adaptive avg pool": (lambda x: F.adaptive_avg_pool2d(x, 1), (8, 32, 24, 24)),
        "GeM pool (Part Two)": (lambda x: F.avg_pool2d(x.clamp(min=1e-6).pow(3.0), x.shape[-2:]).pow(1 / 3),
                                (8, 32, 12, 12)),
        "sum reduction": (lambda x: x.sum(dim=(1, 2, 3)), (8, 32, 24, 24)),
    }


def worker_ops(out: Path) -> None:
    import numpy as np
    import torch

    torch.set_num_threads(1)  # thread count changes reduction order too: keep it out of this comparison
    arrays: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(0)  # inputs and parameters from numpy: the same bits whatever torch's kernels
    for name, (fn, shape) in _ops().items():
        if isinstance(fn, torch.nn.Module):
            with torch.no_grad():
                for p in fn.parameters():
                    p.copy_(torch.from_numpy(rng.standard_normal(p.shape).astype(np.float32) * 0.1))
        x = torch.from_numpy(rng.standard_normal(shape).astype(np.float32)).requires_grad_(True)
        y = fn(x)
        y.float().pow(2).sum().backward()
        arrays[f"{name}|input"] = x.detach().numpy()
        arrays[f"{name}|out"] = y.detach().numpy()
        arrays[f"{name}|grad"] = x.grad.numpy()
    torch.manual_seed(0)
    arrays["random init (nn.Linear, kaiming uniform)|out"] = torch.nn.Linear(384, 256).weight.detach().numpy()
    arrays["torch.randn (normal sampling)|out"] = torch.randn(4096, generator=torch.Generator().manual_seed(0)).numpy()
    arrays["torch.rand (uniform sampling)|out"] = torch.rand(4096, generator=torch.Generator().manual_seed(0)).numpy()
    np.savez(out, **arrays)


def worker_train(config: str, steps: int, out: Path) -> None:
    from lib.families import load_config
    from lib.paths import data_dir, prep_dir
    from lib.train import train

    cfg = load_config(config)
    t0 = time.perf_counter()
    m = train(cfg, data_dir("default"), prep_dir("default"), out, max_steps=steps, progress=False, log=lambda s: None)
    secs = time.perf_counter() - t0
    hist = json.loads((out / "history.json").read_text())
    losses = [r["loss"] for r in hist if "loss" in r]
    (out / "bench.json").write_text(json.dumps({"seconds": secs, "val_mrr": m.get("val_mrr"),
                                                "last_loss": losses[-1] if losses else None}))


def _kernel_path(env: dict[str, str]) -> dict[str, Any]:
    code = "import json; from lib.io import kernel_info; print(json.dumps(kernel_info()))"
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(res.stdout)


def _compare_arrays(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    import numpy as np

    return {k: float(np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)))) for k in a}


def _state_tensors(out: Path) -> dict[str, Any]:
    from safetensors.numpy import load_file

    return load_file(str(out / "last.safetensors"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.cpu_kernels", description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--out", default="benchmarks/results/cpu_kernels.json")
    ap.add_argument("--worker", choices=("ops", "train"), help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)
    ap.add_argument("--dest", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker == "ops":
        worker_ops(Path(args.dest))
        return 0
    if args.worker == "train":
        worker_train(args.config, args.steps, Path(args.dest))
        return 0

    settings = args.settings.split(",")
    configs = [c for c in args.configs.split(",") if c]
    with tempfile.TemporaryDirectory(prefix="cpu_kernels_") as d:  # trained states: GBs, never left behind
        return _compare(args, settings, configs, Path(d))


def _compare(args: argparse.Namespace, settings: list[str], configs: list[str], tmp: Path) -> int:
    import numpy as np

    from lib.io import git_commit, machine_info, write_json

    result: dict[str, Any] = {"steps": args.steps, "settings": {}, "configs": configs, "git_commit": git_commit(),
                              "machine": machine_info()}
    base_env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR",
                                                                 "ONEDNN_MAX_CPU_ISA")}
    me = [sys.executable, "-m", "benchmarks.cpu_kernels"]
    for c in configs:  # warm-up (file cache, caches' index): the first setting would otherwise pay for it
        subprocess.run([*me, "--worker", "train", "--config", c, "--steps", "2", "--dest", str(tmp / f"warm_{c}")],
                       env=base_env, check=True)
    for s in settings:
        env = {**base_env, **SETTINGS[s]}
        row: dict[str, Any] = {"env": SETTINGS[s], "kernels": _kernel_path(env), "train": {}}
        subprocess.run([*me, "--worker", "ops", "--dest", str(tmp / f"ops_{s}.npz")], env=env, check=True)
        for c in configs:
            out = tmp / f"train_{s}_{c}"
            subprocess.run([*me, "--worker", "train", "--config", c, "--steps", str(args.steps),
                            "--dest", str(out)], env=env, check=True)
            row["train"][c] = json.loads((out / "bench.json").read_text())
        result["settings"][s] = row
        print(f"{s}: {row['kernels']['cpu_capability']}, "
              + ", ".join(f"{c}: {row['train'][c]['seconds']:.1f} s, loss {row['train'][c]['last_loss']}"
                          for c in configs), flush=True)
    ref = settings[0]
    ops_ref = dict(np.load(tmp / f"ops_{ref}.npz"))
    for s in settings:
        row = result["settings"][s]
        diffs = _compare_arrays(ops_ref, dict(np.load(tmp / f"ops_{s}.npz")))
        row["ops_max_abs_diff"] = diffs
        row["ops_changed"] = sorted({k.split("|")[0] for k, v in diffs.items() if v > 0 and not k.endswith("|input")})
        row["inputs_changed"] = sorted({k.split("|")[0] for k, v in diffs.items() if v > 0 and k.endswith("|input")})
        for c in configs:
            a, b = _state_tensors(tmp / f"train_{ref}_{c}"), _state_tensors(tmp / f"train_{s}_{c}")
            t = row["train"][c]
            t["weights_max_abs_diff"] = max(float(np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64))))
                                            for k in a if a[k].dtype.kind == "f")
            t["weights_identical"] = all(np.array_equal(a[k], b[k]) for k in a)
            t["time_ratio_vs_native"] = t["seconds"] / result["settings"][ref]["train"][c]["seconds"]
    write_json(args.out, result)
    print(f"| setting | capability | ops that differ from {ref} | " + " | ".join(
        f"{c}: weights = {ref}? (max diff) | time x" for c in configs) + " |")
    for s in settings:
        row = result["settings"][s]
        cells = " | ".join(f"{row['train'][c]['weights_identical']} ({row['train'][c]['weights_max_abs_diff']:.2e}) | "
                           f"{row['train'][c]['time_ratio_vs_native']:.2f}" for c in configs)
        print(f"| {s} | {row['kernels']['cpu_capability']} | {', '.join(row['ops_changed']) or '-'} | {cells} |")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
