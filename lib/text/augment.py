"""The paper's "NLP augmentation": prefix every sentence with its subject (first noun chunk).

For a track's sentences ``s1..sn`` with first spaCy noun chunks ``c1..cn``: sentence ``j`` becomes
``cj + ". " + sj``, and a sentence ``"c1. c2. ... cn."`` is appended (``"A white SUV. A white SUV. A white SUV."``).
Applied to train tracks (``{id: {"frames", "boxes", "nl": [...]}}``, other fields kept) and to queries
(``{id: [...]}``); the output has the input's shape.

A sentence without any noun chunk (policy ``no_chunk``):

- ``"previous"`` (default, the original's behaviour): reuse the chunk of the sentence before it — the original loop
  kept the last chunk in a variable that outlived the sentence *and the track*, so the chunk is carried across
  tracks in file order. When there is no earlier chunk at all (where the original crashed), the ``"sentence"`` rule
  applies.
- ``"sentence"``: the sentence itself, without its final punctuation, is the prefix.
- ``"skip"``: the sentence stays as it is and does not contribute to the appended sentence (which, if no sentence
  of the track has a chunk, repeats the first sentence so that every track still gets ``n + 1`` sentences).

The original used spaCy 2.3; with spaCy 3.8 ``en_core_web_sm`` the chunks differ for some sentences:
:func:`agreement` measures how many of the authors' own val outputs we reproduce exactly.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from lib.io import read_json, write_json
from lib.prep import nlpaug_test_queries, nlpaug_train_tracks

NoChunk = Literal["previous", "sentence", "skip"]
NO_CHUNK_POLICIES: tuple[str, ...] = ("previous", "sentence", "skip")


@dataclass
class PrefixStats:
    tracks: int = 0
    sentences: int = 0
    no_chunk: int = 0  # sentences where the parser found no noun chunk
    reused_previous: int = 0
    sentence_fallback: int = 0
    unprefixed: int = 0
    examples_no_chunk: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def first_chunks(sentences: Sequence[str], nlp: Any = None, batch_size: int = 256) -> list[str | None]:
    """The first noun chunk of each sentence (``None`` when it has none), parsed in batches."""
    if nlp is None:
        from lib.text.nlp import load_nlp

        nlp = load_nlp()
    return [next((c.text for c in doc.noun_chunks), None) for doc in nlp.pipe(sentences, batch_size=batch_size)]


def sentence_as_chunk(sentence: str) -> str:
    return sentence.strip().rstrip(".!?;:, ").strip()


def prefix_group(sentences: Sequence[str], chunks: Sequence[str | None], no_chunk: NoChunk = "previous",
                 previous: str | None = None, stats: PrefixStats | None = None) -> tuple[list[str], str | None]:
    """Prefix one track's sentences given their chunks; returns ``(n + 1 sentences, last chunk used)``."""
    if no_chunk not in NO_CHUNK_POLICIES:
        raise ValueError(f"unknown no_chunk policy {no_chunk!r}; expected one of {NO_CHUNK_POLICIES}")
    stats = stats if stats is not None else PrefixStats()
    out: list[str] = []
    used: list[str] = []
    for s, c in zip(sentences, chunks, strict=True):
        stats.sentences += 1
        if c is None:
            stats.no_chunk += 1
            if len(stats.examples_no_chunk) < 20:
                stats.examples_no_chunk.append(s)
            if no_chunk == "skip":
                out.append(s)
                stats.unprefixed += 1
                continue
            if no_chunk == "previous" and previous is not None:
                c = previous
                stats.reused_previous += 1
            else:
                c = sentence_as_chunk(s)
                stats.sentence_fallback += 1
        if not c:
            out.append(s)
            stats.unprefixed += 1
            continue
        previous = c
        out.append(f"{c}. {s}")
        used.append(c)
    out.append(" ".join(f"{c}." for c in used) if used else (sentences[0] if sentences else ""))
    stats.tracks += 1
    return out, previous


def subject_prefix(sentences: list[str], no_chunk: NoChunk = "previous", nlp: Any = None) -> list[str]:
    """One track: ``[chunk. sentence, ...] + ["chunk1. chunk2. chunk3."]`` (see the module docstring)."""
    out, _ = prefix_group(sentences, first_chunks(sentences, nlp), no_chunk)
    return out


def _sentences_of(key: str, entry: Any, where: str) -> list[str]:
    if isinstance(entry, list):
        nl = entry
    elif isinstance(entry, dict) and "nl" in entry:
        nl = entry["nl"]
    else:
        raise ValueError(f"{where}: entry {key}: expected a list of sentences or an object with field 'nl'")
    if not isinstance(nl, list) or not all(isinstance(s, str) for s in nl):
        raise ValueError(f"{where}: entry {key}: field 'nl' must be a list of strings")
    return nl


def load_sentences(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """``{id: [sentences]}`` from either JSON shape (``{id: [...]}`` or ``{id: {"nl": [...], ...}}``)."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object {{id: sentences}}")
    return {k: _sentences_of(k, v, str(path)) for k, v in data.items()}


def augment_entries(data: dict[str, Any], no_chunk: NoChunk = "previous", carry_across_tracks: bool = True,
                    nlp: Any = None, where: str = "input") -> tuple[dict[str, Any], PrefixStats]:
    """Prefix every entry of a tracks or queries mapping; the result keeps the input's shape and order."""
    groups = {k: _sentences_of(k, v, where) for k, v in data.items()}
    flat = [s for g in groups.values() for s in g]
    chunks = first_chunks(flat, nlp)
    stats = PrefixStats()
    out: dict[str, Any] = {}
    previous: str | None = None
    pos = 0
    for k, sents in groups.items():
        new, last = prefix_group(sents, chunks[pos:pos + len(sents)], no_chunk,
                                 previous if carry_across_tracks else None, stats)
        previous = last if carry_across_tracks else None
        pos += len(sents)
        entry = data[k]
        out[k] = new if isinstance(entry, list) else {**entry, "nl": new}
    return out, stats


def augment_file(in_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
                 no_chunk: NoChunk = "previous", carry_across_tracks: bool = True, nlp: Any = None) -> PrefixStats:
    """Read a tracks/queries JSON, prefix it and write it (atomically) in the same shape."""
    data = read_json(in_path)
    if not isinstance(data, dict):
        raise ValueError(f"{in_path}: expected a JSON object {{id: sentences or track}}")
    out, stats = augment_entries(data, no_chunk, carry_across_tracks, nlp, where=str(in_path))
    write_json(out_path, out, indent=None)
    return stats


def prepare_text(data_root: str | os.PathLike[str], prep_dir: str | os.PathLike[str],
                 no_chunk: NoChunk = "previous", nlp: Any = None) -> dict[str, Any]:
    """``PREP/text/train-tracks_nlpaug.json`` and ``PREP/text/test-queries_nlpaug.json`` from a dataset."""
    from lib.cityflow import Layout

    layout = Layout.of(data_root)
    return {
        "train": augment_file(layout.train_tracks, nlpaug_train_tracks(prep_dir), no_chunk, nlp=nlp).to_dict(),
        "queries": augment_file(layout.test_queries, nlpaug_test_queries(prep_dir), no_chunk, nlp=nlp).to_dict(),
    }


# ---------------------------------------------------------------------------------------------------------------
# Agreement with the authors' own output


@dataclass
class Agreement:
    tracks: int
    prefixed_total: int
    prefixed_equal: int
    joined_total: int
    joined_equal: int
    tracks_equal: int
    mismatches: list[dict[str, str]]

    @property
    def prefixed_rate(self) -> float:
        return self.prefixed_equal / max(1, self.prefixed_total)

    @property
    def joined_rate(self) -> float:
        return self.joined_equal / max(1, self.joined_total)

    def to_dict(self, max_examples: int = 20) -> dict[str, Any]:
        d = asdict(self)
        d["mismatches"] = self.mismatches[:max_examples]
        d["prefixed_rate"] = self.prefixed_rate
        d["joined_rate"] = self.joined_rate
        d["tracks_rate"] = self.tracks_equal / max(1, self.tracks)
        return d


def compare_outputs(ours: dict[str, list[str]], theirs: dict[str, list[str]], originals: dict[str, list[str]]
                    ) -> Agreement:
    """Exact agreement, sentence by sentence, between two prefixed outputs of the same input."""
    missing = sorted(set(theirs) - set(ours))
    if missing:
        raise ValueError(f"{len(missing)} ids of the reference output are not in ours, e.g. {missing[0]}")
    pt = pe = jt = je = te = 0
    mism: list[dict[str, str]] = []
    for k, ref in theirs.items():
        mine, n = ours[k], len(originals[k])
        for j in range(n):
            pt += 1
            if j < len(mine) and mine[j] == ref[j]:
                pe += 1
            else:
                mism.append({"id": k, "sentence": originals[k][j], "ours": mine[j] if j < len(mine) else "",
                             "theirs": ref[j]})
        jt += 1
        je += len(mine) > n and len(ref) > n and mine[n] == ref[n]
        te += mine == ref
    return Agreement(len(theirs), pt, pe, jt, je, te, mism)


def agreement(original_path: str | os.PathLike[str], theirs_path: str | os.PathLike[str],
              no_chunk: NoChunk = "previous", carry_across_tracks: bool = True, nlp: Any = None) -> Agreement:
    """Prefix ``original_path`` (e.g. ``val.json``) and compare with the authors' output (``val_nlpaug.json``)."""
    data = read_json(original_path)
    ours, _ = augment_entries(data, no_chunk, carry_across_tracks, nlp, where=str(original_path))
    originals = {k: _sentences_of(k, v, str(original_path)) for k, v in data.items()}
    ours_s = {k: _sentences_of(k, v, "ours") for k, v in ours.items()}
    return compare_outputs(ours_s, load_sentences(theirs_path), originals)


def real_annotations_dir() -> Path:
    """``../shared/data/cityflow_nl_annotations`` beside the repository (may not exist)."""
    from lib.paths import ROOT

    return ROOT.parent / "shared" / "data" / "cityflow_nl_annotations"
