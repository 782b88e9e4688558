"""Test helpers for the Part Two (instance) family: a RoBERTa folder without weights, small overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / RoBERTa byte-level alphabet (256 printable stand-ins for the bytes)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def make_roberta_folder(folder: Path, small: bool = False) -> Path:
    """A local ``roberta-base``-like folder: ``config.json`` (the roberta-base architecture, or a 2-layer 64-wide
    one with ``small``) and a real RoBERTa byte-level BPE tokenizer with no merges (one token per byte) and the
    RoBERTa special tokens ``<s>``=0, ``<pad>``=1, ``</s>``=2. No weights: load with ``text_pretrained: false``."""
    from transformers import RobertaConfig, RobertaTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for ch in _bytes_to_unicode().values():
        vocab.setdefault(ch, len(vocab))
    vocab["<mask>"] = len(vocab)
    RobertaTokenizer(vocab=vocab, merges=[]).save_pretrained(str(folder))
    kw: dict[str, Any] = dict(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1,
                              bos_token_id=0, eos_token_id=2)
    if small:
        kw.update(vocab_size=len(vocab), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=128)
    RobertaConfig(**kw).save_pretrained(str(folder))
    return folder


NO_WEIGHTS = {"model": {"backbone_weights": None, "text_pretrained": False}}


def small_cpu_overrides(**train: Any) -> dict[str, Any]:
    """A paper config made tiny: small backbone, small input, packaged MiniLM, few steps."""
    t = {"batch_size": 4, "max_steps": 4, "val_every": 2, "ckpt_every": 2, "log_every": 1, "epochs": 2,
         "warm_epochs": 1}
    t.update(train)
    return {"model": {"backbone": "resnet18", "backbone_weights": None, "text_encoder": "all-MiniLM-L6-v2",
                      "crop_size": 32, "proj_dim": 64},
            "data": {"multi": 1}, "train": t, "embed": {"batch_size": 8}}
