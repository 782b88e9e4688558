"""The authors' released embeddings: read through a restricted unpickler, converted to our npz format.

The 2021 winners published their extracted features as pickles:

- Part One, per configuration: ``img_feat_<cfg>.pkl`` ``{track_uuid: {frame_index: vector}}`` and
  ``lang_feat_<cfg>.pkl`` ``{query_uuid: array [n_sentences, E]}``;
- Part Two: ``submit_result_<names>_gallery.pkl`` ``{(track_uuid,): vector}`` and ``submit_result_<names>_query.pkl``
  ``{query_uuid: vector}`` (when ``<names>`` lists M models, the vector is their M features concatenated).

Unpickling runs code chosen by the file's author, so :class:`RestrictedUnpickler` admits only what dicts, lists,
tuples, sets, strings, numbers and numpy arrays need; any other global (``os.system``, ``builtins.eval``, a torch
tensor, ...) is refused with a :class:`ReleaseError` that names the global and the file.

Conversion writes an embedding folder per configuration (``gallery.npz``, ``queries.npz``, ``embedding.json``) that
``lib.ensemble.scores`` ranks exactly like the published ensemble script:

    python -m lib.release RELEASE_DIR --out EMBED_ROOT [--part-two-split M]
    python -m lib.ensemble EMBED_ROOT/* --out OUT
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lib.embeddings import write_manifest
from lib.errors import InputError
from lib.io import path_in, save_npz, write_run_info

# Published weights of the Part One configurations (docs/reference.md, P1.7); Part Two models weigh 1 each.
PART_ONE_WEIGHTS = {"motion_effb3_NOCLS_nlpaug_320": 4.0, "motion_effb2_1CLS_nlpaug_288": 1.0,
                    "motion_SE_3CLS_nonlpaug_288": 1.0, "motion_SE_NOCLS_nlpaug_288": 1.0,
                    "motion_SE_NOCLS_nonlpaug_288": 1.0}


class ReleaseError(InputError):
    """A release file that is refused or has an unexpected shape; the message names the file."""


def _allowed_globals() -> dict[tuple[str, str], Any]:
    import builtins
    import codecs

    from numpy._core import multiarray, numeric

    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for mod in ("numpy.core", "numpy._core"):
        allowed[(f"{mod}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{mod}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{mod}.numeric", "_frombuffer")] = numeric._frombuffer
    # protocol-2 pickles carry raw bytes as `_codecs.encode(str, "latin1")`
    allowed[("_codecs", "encode")] = codecs.encode
    for name in ("dict", "list", "tuple", "set", "frozenset", "str", "int", "float", "complex", "bytes",
                 "bytearray", "bool"):
        allowed[("builtins", name)] = getattr(builtins, name)
        allowed[("__builtin__", name)] = getattr(builtins, name)  # Python 2 pickles
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals numpy arrays and builtin containers need."""

    def __init__(self, file: Any, source: str = "<bytes>") -> None:
        super().__init__(file)
        self.source = source
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key not in self._allowed:
            raise ReleaseError(f"{self.source}: refused to load global '{module}.{name}': only dicts, lists, tuples, "
                               "strings, numbers and numpy arrays are allowed in a release file")
        return self._allowed[key]

    def persistent_load(self, pid: Any) -> Any:
        raise ReleaseError(f"{self.source}: refused a persistent id ({pid!r}) in a release file")


def restricted_loads(data: bytes, source: str = "<bytes>") -> Any:
    try:
        return RestrictedUnpickler(io.BytesIO(data), source).load()
    except ReleaseError:
        raise
    except Exception as e:  # truncated / corrupt pickle
        raise ReleaseError(f"{source}: not a readable pickle: {type(e).__name__}: {e}") from None


def restricted_load(path: str | os.PathLike[str]) -> Any:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: release file not found")
    return restricted_loads(p.read_bytes(), str(p))


def _vector(v: Any, where: str) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    if a.ndim == 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 1:
        raise ReleaseError(f"{where}: expected a vector, got shape {a.shape}")
    return a


def _sentences(v: Any, where: str) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    if a.ndim == 1:
        a = a[None]
    if a.ndim == 3 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 2:
        raise ReleaseError(f"{where}: expected [n_sentences, E], got shape {a.shape}")
    return a


def _pad_queries(per_query: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids = list(per_query)
    s_max = max(a.shape[0] for a in per_query.values())
    dims = {a.shape[1] for a in per_query.values()}
    if len(dims) != 1:
        raise ReleaseError(f"query vectors of different widths {sorted(dims)}")
    feats = np.zeros((len(ids), s_max, dims.pop()), dtype=np.float32)
    n = np.zeros(len(ids), dtype=np.int64)
    for i, q in enumerate(ids):
        a = per_query[q]
        feats[i, : a.shape[0]] = a
        n[i] = a.shape[0]
    return np.array(ids), feats, n


def part_one_arrays(img_feat: Any, lang_feat: Any, source: str = "") -> dict[str, np.ndarray]:
    """Track feature = mean of its frame vectors (not re-normalised); queries kept as released."""
    if not isinstance(img_feat, dict) or not isinstance(lang_feat, dict):
        raise ReleaseError(f"{source}: expected dicts {{track: {{frame: vector}}}} and {{query: array}}")
    g_ids, g_feats = [], []
    for track, frames in img_feat.items():
        if not isinstance(frames, dict) or not frames:
            raise ReleaseError(f"{source}: track {track}: expected a non-empty {{frame_index: vector}} dict")
        vecs = np.stack([_vector(frames[f], f"{source}: track {track}, frame {f}") for f in sorted(frames)])
        g_ids.append(str(track))
        g_feats.append(vecs.mean(0))
    q_ids, q_feats, n = _pad_queries({str(q): _sentences(v, f"{source}: query {q}") for q, v in lang_feat.items()})
    return {"gallery_ids": np.array(g_ids), "gallery": np.stack(g_feats), "query_ids": q_ids, "queries": q_feats,
            "n_sentences": n}


def part_two_arrays(gallery: Any, query: Any, split: int = 1, source: str = "") -> list[dict[str, np.ndarray]]:
    """One array set per model (``split`` = number of concatenated models in the vectors)."""
    if not isinstance(gallery, dict) or not isinstance(query, dict):
        raise ReleaseError(f"{source}: expected dicts {{(track,): vector}} and {{query: vector}}")
    g_ids = [str(k[0]) if isinstance(k, tuple) else str(k) for k in gallery]
    g = np.stack([_vector(v, f"{source}: track {k}") for k, v in gallery.items()])
    q_ids = [str(k) for k in query]
    q = np.stack([_vector(v, f"{source}: query {k}") for k, v in query.items()])
    if g.shape[1] != q.shape[1] or g.shape[1] % split:
        raise ReleaseError(f"{source}: gallery width {g.shape[1]} and query width {q.shape[1]} do not split into "
                           f"{split} models")
    w = g.shape[1] // split
    return [{"gallery_ids": np.array(g_ids), "gallery": g[:, i * w:(i + 1) * w], "query_ids": np.array(q_ids),
             "queries": q[:, None, i * w:(i + 1) * w], "n_sentences": np.ones(len(q_ids), dtype=np.int64)}
            for i in range(split)]


def write_embedding(out_dir: str | os.PathLike[str], arrays: Mapping[str, np.ndarray], name: str, family: str,
                    weight: float, sources: list[str]) -> Path:
    d = Path(out_dir)
    save_npz(d / "gallery.npz", ids=arrays["gallery_ids"], feats=arrays["gallery"].astype(np.float32))
    save_npz(d / "queries.npz", ids=arrays["query_ids"], feats=arrays["queries"].astype(np.float32),
             n_sentences=arrays["n_sentences"])
    write_run_info(d, {"converted_from": sources, "name": name, "family": family, "weight": weight})
    from lib.families import get_family  # the family's registered scoring rule

    write_manifest(d, name, family, get_family(family).scoring_rule, weight, source="authors' release", files=sources)
    return d


def convert_release(release_dir: str | os.PathLike[str], out_root: str | os.PathLike[str],
                    part_two_split: int = 1) -> list[Path]:
    """Convert every pickle pair found in ``release_dir``; return the embedding folders written."""
    src = Path(release_dir)
    out = Path(out_root)
    written: list[Path] = []
    for img in sorted(src.glob("img_feat_*.pkl")):
        cfg = img.name[len("img_feat_"):-len(".pkl")]
        lang = src / f"lang_feat_{cfg}.pkl"
        if not lang.exists():
            raise FileNotFoundError(f"{lang}: the query features of {img.name} are missing")
        arrays = part_one_arrays(restricted_load(img), restricted_load(lang), source=str(img))
        written.append(write_embedding(path_in(out, cfg), arrays, cfg, "dual_stream", PART_ONE_WEIGHTS.get(cfg, 1.0),
                                       [str(img), str(lang)]))
    for gal in sorted(src.glob("submit_result_*_gallery.pkl")):
        names = gal.name[len("submit_result_"):-len("_gallery.pkl")]
        qry = src / f"submit_result_{names}_query.pkl"
        if not qry.exists():
            raise FileNotFoundError(f"{qry}: the query features of {gal.name} are missing")
        parts = part_two_arrays(restricted_load(gal), restricted_load(qry), part_two_split, source=str(gal))
        given = names.split(",")
        if len(given) == len(parts):
            model_names = given
        else:
            model_names = [names] if len(parts) == 1 else [f"{names}_{i}" for i in range(len(parts))]
        for arrays, mname in zip(parts, model_names):
            safe = re.sub(r"[^A-Za-z0-9_.-]", "_", mname)
            written.append(write_embedding(path_in(out, safe), arrays, mname, "instance", 1.0, [str(gal), str(qry)]))
    if not written:
        raise FileNotFoundError(f"{src}: no img_feat_*.pkl or submit_result_*_gallery.pkl files")
    return written


def run_release(release_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                data_root: str | os.PathLike[str] | None = None, part_two_split: int = 1) -> dict[str, Any]:
    """Convert the authors' pickles into ``OUT/embed/<config>`` and rank with our ensemble (published weights):
    ``OUT/ensemble/submission.json``; returns the configurations, the submission and, when the dataset has a
    ground truth, every configuration's and variant's test metrics."""
    from lib.ensemble.run import notebook_metrics, run_ensemble

    out = Path(out_dir)
    dirs = convert_release(release_dir, out / "embed", part_two_split)
    result = run_ensemble(dirs, out / "ensemble", data_root=data_root)
    return {"embedding_dirs": [str(d) for d in dirs], **notebook_metrics(result)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lib.release", description=__doc__.split("\n\n")[0])
    ap.add_argument("release_dir", help="folder with the authors' img_feat_/lang_feat_/submit_result_ pickles")
    ap.add_argument("--out", required=True, help="embedding root: one folder per configuration is written")
    ap.add_argument("--part-two-split", type=int, default=1,
                    help="number of models concatenated in each Part Two vector (their '--names' list)")
    args = ap.parse_args(argv)
    dirs = convert_release(args.release_dir, args.out, args.part_two_split)
    print(json.dumps({"embedding_dirs": [str(d) for d in dirs]}))
    return 0


if __name__ == "__main__":
    from lib.cli import run_main

    raise SystemExit(run_main(main))
