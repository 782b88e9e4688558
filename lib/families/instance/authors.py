"""Import the authors' released Part Two checkpoints (``net_last.pth`` + ``opts.yaml``) into our ``instance`` model.

``python -m lib.authors_part_two NET_LAST.pth --opts OPTS.yaml --config params/<paper config>.yaml --out DIR``
writes ``DIR/best.safetensors`` (weights + the trainer's metadata, so ``lib.embed`` and
``lib.families.load_trained_model`` take it like one of our checkpoints), ``DIR/import_report.json`` (the options read,
the key mapping, missing/unexpected keys) and ``run_info.json``.

Safety: the checkpoint is read with ``torch.load(..., weights_only=True)`` (tensors only, no code), ``opts.yaml``
with ``yaml.safe_load``.

Names (``docs/reference.md``, P2.8). The released ``net_last.pth`` holds the original ``SiameseBaselineModel``
saved from DataParallel (every key under ``module.``):

=============================================================  ==============================================
original key                                                   ours (``InstanceModel``)
=============================================================  ==============================================
``resnet50.model.layer0..4.*`` (Cadene SE-ResNeXt101)           ``backbone.layer0..4.*`` (timm legacy_seresnext101)
``resnet50.model.avg_pool2.p`` / ``max_pool2.p`` (GeM p 1 / 5)  ``pool_avg.p`` / ``pool_max.p``
``resnet50.classifier.add_block.{0,1}.*`` (Linear, BN 512)      ``classifier.add_block.{0,1}.*``
``resnet50.classifier.classifier.0.*`` (Linear 512->#ids)       ``classifier.classifier.1.*`` (after our Dropout)
``gem.p`` (segment GeM, nseg > 1)                               ``pool_segments.p``
``bert_model.*`` (RoBERTa, pooler removed)                      ``text_encoder.*``
``lang_fc.{0,1}.*``, ``visual_fc.{0,1}.*``                      the same
``logit_scale1``                                                ``logit_scale``
``logit_scale2`` (never used)                                   dropped
=============================================================  ==============================================

Every other key is reported as unmapped and every key of ours that the file does not provide as missing; a
conversion with either fails unless ``strict=False``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

# (pattern on the original key after stripping "module.", replacement in our InstanceModel) - first match wins.
RULES: list[tuple[str, str | None]] = [
    # dropped on purpose
    (r"^logit_scale2$", None),  # built but never used
    (r"^bert_model\.pooler\..*$", None),  # a RoBERTa pooler, if a file kept one (the original replaced it)
    # visual: the Cadene SE-ResNeXt101 inside ft_net_SE, its two GeM poolings and the shared ClassBlock
    (r"^resnet50\.model\.(layer[0-4]\..+)$", r"backbone.\1"),
    (r"^resnet50\.model\.avg_pool2\.p$", "pool_avg.p"),
    (r"^resnet50\.model\.max_pool2\.p$", "pool_max.p"),
    (r"^resnet50\.classifier\.add_block\.([01])\.(.+)$", r"classifier.add_block.\1.\2"),
    (r"^resnet50\.classifier\.classifier\.0\.(weight|bias)$", r"classifier.classifier.1.\1"),
    # the GeM over segments (nseg > 1)
    (r"^gem\.p$", "pool_segments.p"),
    # text
    (r"^bert_model\.(.+)$", r"text_encoder.\1"),
    (r"^lang_fc\.([01]\..+)$", r"lang_fc.\1"),
    (r"^visual_fc\.([01]\..+)$", r"visual_fc.\1"),
    (r"^logit_scale1$", "logit_scale"),
]

# opts.yaml option -> (section, our key, converter)
OPTS: dict[str, tuple[str, str, Any]] = {
    "nseg": ("model", "nseg", int),
    "CROP_SIZE": ("model", "crop_size", int),
    "droprate": ("model", "droprate", float),
    "pad": ("data", "pad", float),
    "batchsize": ("train", "batch_size", int),
    "lr": ("train", "lr", float),
    "warm_epoch": ("train", "warm_epochs", float),
    "num_epoch": ("train", "epochs", int),
}


@dataclass
class ImportReport:
    mapped: dict[str, str] = field(default_factory=dict)  # original -> ours
    dropped: list[str] = field(default_factory=list)  # deliberately ignored
    unmapped: list[str] = field(default_factory=list)  # no rule matched
    missing: list[str] = field(default_factory=list)  # ours, not provided
    shape_mismatch: list[str] = field(default_factory=list)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    unused_options: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.unmapped or self.missing or self.shape_mismatch)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "mapped": self.mapped, "dropped": self.dropped, "unmapped": self.unmapped,
                "missing": self.missing, "shape_mismatch": self.shape_mismatch, "overrides": self.overrides,
                "unused_options": self.unused_options}


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """``net_last.pth`` as a flat state dict (``module.`` stripped), read with ``weights_only=True``."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: checkpoint not found") from None
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"{path}: not a tensors-only checkpoint ({type(e).__name__}: {e}); refusing to unpickle "
                         "arbitrary objects") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: expected a state dict of tensors")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def read_opts(path: str | os.PathLike[str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Nested overrides for our configuration from ``opts.yaml``, and the options we do not use."""
    with open(path, encoding="utf-8") as f:
        opts = yaml.safe_load(f) or {}
    if not isinstance(opts, dict):
        raise ValueError(f"{path}: expected a mapping of options")
    over: dict[str, dict[str, Any]] = {}
    unused = []
    for k, v in opts.items():
        if k in OPTS and v is not None:
            sec, key, conv = OPTS[k]
            over.setdefault(sec, {})[key] = conv(v)
        elif k == "ddloss":
            over.setdefault("train", {})["loss"] = "dd" if v else "clip"
        else:
            unused.append(k)
    return over, unused


def map_key(key: str) -> tuple[bool, str | None]:
    """(matched, our key or None when the key is dropped on purpose)."""
    for pat, rep in RULES:
        if re.match(pat, key):
            return True, (None if rep is None else re.sub(pat, rep, key))
    return False, None


def convert_state_dict(original: dict[str, torch.Tensor], ours: dict[str, torch.Tensor]
                       ) -> tuple[dict[str, torch.Tensor], ImportReport]:
    """Map the original tensors onto our model's state dict keys (shapes checked)."""
    rep = ImportReport()
    out: dict[str, torch.Tensor] = {}
    for k, v in original.items():
        matched, target = map_key(k)
        if not matched:
            rep.unmapped.append(k)
            continue
        if target is None:
            rep.dropped.append(k)
            continue
        if target not in ours:
            rep.unmapped.append(k)
            continue
        if target in out:
            raise ValueError(f"original keys {rep_key(rep.mapped, target)!r} and {k!r} both map to {target!r}")
        if tuple(ours[target].shape) != tuple(v.shape):
            rep.shape_mismatch.append(f"{k} {tuple(v.shape)} -> {target} {tuple(ours[target].shape)}")
            continue
        out[target] = v.to(ours[target].dtype)
        rep.mapped[k] = target
    rep.missing = [k for k in ours if k not in out]
    return out, rep


def rep_key(mapped: dict[str, str], target: str) -> str:
    return next((k for k, t in mapped.items() if t == target), "?")


def num_classes_of(original: dict[str, torch.Tensor]) -> int:
    for k, v in original.items():
        matched, target = map_key(k)
        if matched and target == "classifier.classifier.1.weight":
            return int(v.shape[0])
    raise ValueError("checkpoint has no id classifier weight (classifier.classifier.*.weight)")


def import_checkpoint(checkpoint: str | os.PathLike[str], config: str | os.PathLike[str],
                      opts: str | os.PathLike[str] | None = None, out_dir: str | os.PathLike[str] | None = None,
                      overrides: dict[str, Any] | None = None, strict: bool = True
                      ) -> tuple[torch.nn.Module, ImportReport]:
    """Build our model for ``config`` (+ ``opts.yaml`` settings + ``overrides``), load the converted weights.

    With ``out_dir``, writes ``best.safetensors`` (trainer format), ``import_report.json`` and ``run_info.json``.
    """
    from lib.config import merge
    from lib.families import create_model, load_config
    from lib.families.weights import save_weights
    from lib.io import write_json, write_run_info

    original = load_checkpoint(checkpoint)
    # every weight comes from the checkpoint: no ImageNet file, no pretrained text weights (the text encoder's
    # folder still gives its architecture and tokenizer)
    over: dict[str, Any] = {"model": {"backbone_weights": None, "text_pretrained": False}}
    unused: list[str] = []
    if opts is not None:
        from_opts, unused = read_opts(opts)
        over = merge(over, from_opts)
    over = merge(over, overrides or {})
    cfg = load_config(config, over)
    if cfg.family != "instance":
        raise ValueError(f"{cfg.source}: family {cfg.family!r}; the Part Two import needs an 'instance' config")
    model_kwargs = {"num_classes": num_classes_of(original)}
    model = create_model(cfg, **model_kwargs)
    ours = model.state_dict()
    converted, rep = convert_state_dict(original, ours)
    rep.overrides, rep.unused_options = over, unused
    if strict and not rep.ok:
        raise ValueError(f"{checkpoint}: does not convert onto {cfg.source}: unmapped {rep.unmapped[:10]}, missing "
                         f"{rep.missing[:10]}, shape mismatch {rep.shape_mismatch[:10]}")
    model.load_state_dict(converted, strict=False)
    model.eval()
    if out_dir is not None:
        out = Path(out_dir)
        save_weights(out / "best.safetensors", model, cfg, step=0, model_kwargs=model_kwargs,
                     extra={"imported_from": str(checkpoint)})
        write_json(out / "import_report.json", rep.to_dict())
        write_run_info(out, {"config": cfg.to_dict(), "source": cfg.source, "checkpoint": str(checkpoint),
                             "opts": str(opts) if opts else None})
    return model, rep


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lib.authors_part_two", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="the authors' net_last.pth")
    p.add_argument("--config", required=True, help="our params YAML of the same experiment")
    p.add_argument("--opts", default=None, help="the experiment's opts.yaml (nseg, CROP_SIZE, droprate, pad, ...)")
    p.add_argument("--out", required=True, help="output folder (best.safetensors, import_report.json)")
    p.add_argument("--override", default=None, help="JSON of nested overrides for the configuration")
    p.add_argument("--no-strict", action="store_true", help="load even with unmapped or missing keys")
    a = p.parse_args(argv)
    _, rep = import_checkpoint(a.checkpoint, a.config, a.opts, a.out,
                               json.loads(a.override) if a.override else None, strict=not a.no_strict)
    print(json.dumps({"ok": rep.ok, "mapped": len(rep.mapped), "dropped": rep.dropped, "unmapped": rep.unmapped,
                      "missing": rep.missing, "out": a.out}))
    sys.stdout.flush()
    return 0 if rep.ok else 1


if __name__ == "__main__":
    from lib.cli import run_main

    raise SystemExit(run_main(main))
