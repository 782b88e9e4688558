"""Import of the authors' released Part One checkpoints (``*.pth``) into our dual-stream model.

The released files hold ``{"state_dict": ...}`` (DataParallel: every key prefixed ``module.``), read here with
``torch.load(..., weights_only=True)`` (no code is unpickled). Their module names map onto ours:

============================  ===========================
authors                       ours
============================  ===========================
``vis_backbone``              ``crop_backbone``
``vis_backbone_bk``           ``motion_backbone``
``domian_vis_fc`` (``_bk``)   ``crop_proj.fc`` (``motion_proj.fc``)
``vis_car_fc``                ``crop_head``
``vis_motion_fc``             ``motion_head``
``domian_vis_fc_merge``       ``merge``
``domian_lang_fc``            ``text_proj``
``lang_car_fc``               ``text_car_head``
``lang_motion_fc``            ``text_motion_head``
``id_cls`` / 2 / 3            ``id_cls_car`` / ``id_cls_motion`` / ``id_cls_share``
``logit_scale``               ``logit_scale``
``bert_model``                not imported: the frozen RoBERTa-large comes from ``model.text_encoder``
============================  ===========================

Inside the backbones, ``pretrainedmodels``' SE-ResNeXt names equal timm's ``legacy_seresnext50_32x4d`` (its unused
``last_linear`` is dropped), and ``efficientnet_pytorch`` names are renamed to timm's ``tf_efficientnet_*``
(``_conv_stem -> conv_stem``, ``_blocks.k -> blocks.i.j``, ...; its unused ``_fc`` is dropped). The authors'
EfficientNets pad for a fixed image size (260 px for B2, 300 px for B3) whatever the input: the paper configurations
set ``model.static_padding_size`` accordingly so the imported weights see the padding they were trained with.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from lib.config import RunConfig
    from lib.families.dual_stream.model import DualStreamModel

TOP_LEVEL = [  # longest prefixes first
    ("vis_backbone_bk.", "motion_backbone."),
    ("vis_backbone.", "crop_backbone."),
    ("domian_vis_fc_merge.", "merge."),
    ("domian_vis_fc_bk.", "motion_proj.fc."),
    ("domian_vis_fc.", "crop_proj.fc."),
    ("vis_car_fc.", "crop_head."),
    ("vis_motion_fc.", "motion_head."),
    ("domian_lang_fc.", "text_proj."),
    ("lang_car_fc.", "text_car_head."),
    ("lang_motion_fc.", "text_motion_head."),
    ("id_cls3.", "id_cls_share."),
    ("id_cls2.", "id_cls_motion."),
    ("id_cls.", "id_cls_car."),
]
IGNORED_PREFIXES = {"bert_model.": "frozen text encoder (loaded from model.text_encoder)"}
UNUSED_BACKBONE = ("last_linear.", "_fc.")

_EFF_EXPAND = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
               "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand", "_project_conv": "conv_pwl",
               "_bn2": "bn3"}
_EFF_NO_EXPAND = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_se_reduce": "se.conv_reduce",
                  "_se_expand": "se.conv_expand", "_project_conv": "conv_pw", "_bn2": "bn2"}
_EFF_OUTER = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2"}


@dataclass
class ImportReport:
    """What happened to every key: loaded into our model, missing in the checkpoint, or not used."""

    source: str
    loaded: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    ignored: dict[str, int] = field(default_factory=dict)
    num_classes: int = 0

    def summary(self) -> str:
        ign = ", ".join(f"{k}: {v} keys" for k, v in self.ignored.items()) or "none"
        return (f"{self.source}: {self.loaded} tensors loaded; missing in checkpoint: {len(self.missing)} "
                f"{self.missing[:8]}; unexpected: {len(self.unexpected)} {self.unexpected[:8]}; ignored: {ign}")

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "loaded": self.loaded, "missing": self.missing,
                "unexpected": self.unexpected, "ignored": self.ignored, "num_classes": self.num_classes}


def read_authors_checkpoint(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The state dict of a released ``*.pth`` (``state_dict`` entry or the whole file), ``module.`` stripped."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with context
        raise RuntimeError(f"{path}: cannot be read with weights_only=True ({type(e).__name__}: {e}); only tensor "
                           "checkpoints are accepted") from e
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{path}: expected a state dict (or {{'state_dict': ...}}) of tensors")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}


def _efficientnet_block_index(model_backbone: nn.Module) -> list[tuple[int, int]]:
    blocks = model_backbone.blocks
    return [(i, j) for i, stage in enumerate(blocks) for j in range(len(stage))]


def _rename_efficientnet(rest: str, block_index: list[tuple[int, int]], has_expand: set[int]) -> str | None:
    m = re.match(r"_blocks\.(\d+)\.(\w+)\.(.+)$", rest)
    if m:
        k, part, tail = int(m.group(1)), m.group(2), m.group(3)
        table = _EFF_EXPAND if k in has_expand else _EFF_NO_EXPAND
        if k >= len(block_index) or part not in table:
            return None
        i, j = block_index[k]
        return f"blocks.{i}.{j}.{table[part]}.{tail}"
    head, _, tail = rest.partition(".")
    return f"{_EFF_OUTER[head]}.{tail}" if head in _EFF_OUTER else None


def convert_state_dict(sd: dict[str, torch.Tensor], model: DualStreamModel, source: str = "<state dict>"
                       ) -> tuple[dict[str, torch.Tensor], ImportReport]:
    """Rename the authors' keys to ours for ``model`` (whose backbone kind decides the inner renaming)."""
    report = ImportReport(source=source)
    efficient = hasattr(model.crop_backbone, "conv_stem") and hasattr(model.crop_backbone, "blocks")
    out: dict[str, torch.Tensor] = {}
    expand = {stream: {int(m.group(1)) for k in sd
                       for m in [re.match(re.escape(stream) + r"_blocks\.(\d+)\._expand_conv\.", k)] if m}
              for stream in ("vis_backbone.", "vis_backbone_bk.")}
    block_index = _efficientnet_block_index(model.crop_backbone) if efficient else []
    for key, val in sd.items():
        ign = next((why for p, why in IGNORED_PREFIXES.items() if key.startswith(p)), None)
        if ign is not None:
            report.ignored[ign] = report.ignored.get(ign, 0) + 1
            continue
        if key == "logit_scale":
            out[key] = val
            continue
        new = None
        for a, b in TOP_LEVEL:
            if key.startswith(a):
                rest = key[len(a):]
                if b.endswith("backbone."):
                    if rest.startswith(UNUSED_BACKBONE):
                        why = "unused backbone classifier (last_linear / _fc)"
                        report.ignored[why] = report.ignored.get(why, 0) + 1
                        new = ""
                        break
                    if efficient:
                        stream = "vis_backbone_bk." if b.startswith("motion") else "vis_backbone."
                        renamed = _rename_efficientnet(rest, block_index, expand[stream])
                        new = b + renamed if renamed is not None else None
                    else:
                        new = b + rest
                else:
                    new = b + rest
                break
        if new == "":
            continue
        if new is None:
            report.unexpected.append(key)
            continue
        out[new] = val
    return out, report


def _num_classes(sd: dict[str, torch.Tensor]) -> int:
    for k in ("id_cls.3.weight", "id_cls2.3.weight", "id_cls3.3.weight"):
        if k in sd:
            return int(sd[k].shape[0])
    return 0


def load_authors_checkpoint(path: str | os.PathLike[str], cfg: RunConfig, with_text_encoder: bool = True,
                            state_dict: dict[str, torch.Tensor] | None = None
                            ) -> tuple[DualStreamModel, ImportReport]:
    """Build ``cfg``'s model and load an authors' checkpoint into it; returns the model (eval mode, CPU) and a
    report of loaded / missing / unexpected / ignored keys (``report.summary()``)."""
    from lib.families.dual_stream.model import build_dual_stream

    sd = state_dict if state_dict is not None else read_authors_checkpoint(path)
    n_cls = _num_classes(sd)
    model = build_dual_stream(cfg, num_classes=n_cls, with_text_encoder=with_text_encoder)
    converted, report = convert_state_dict(sd, model, source=str(path))
    report.num_classes = n_cls
    ours = model.state_dict()
    for k, v in list(converted.items()):
        if k not in ours:
            report.unexpected.append(k)
            del converted[k]
        elif ours[k].shape != v.shape:
            if ours[k].numel() == v.numel():  # e.g. conv 1x1 [E, C, 1, 1] vs linear [E, C]
                converted[k] = v.reshape(ours[k].shape)
            else:
                raise ValueError(f"{path}: {k}: checkpoint shape {tuple(v.shape)} does not fit the model's "
                                 f"{tuple(ours[k].shape)} (configuration {cfg.source})")
    result = model.load_state_dict(converted, strict=False)
    report.missing = list(result.missing_keys)
    report.unexpected += list(result.unexpected_keys)
    report.loaded = len(converted)
    return model.eval(), report
