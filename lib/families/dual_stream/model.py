"""Part One: the dual-stream model family (crop stream + motion-map stream, frozen language model).

Architecture, as published (E = ``embed_dim``, E_t = the text encoder's width; module names of the authors' code in
brackets, see :mod:`lib.families.dual_stream.authors` for the mapping):

- vision, per stream: a timm backbone (pooled features, C wide) [vis_backbone / vis_backbone_bk] then a
  projection to E [domian_vis_fc / _bk]: a 1x1 convolution on the pooled map for SE-ResNeXt (``proj: conv1x1``),
  dropout + Linear for EfficientNet (``proj: linear``; the dropout is EfficientNet's own head dropout, 0.3 for
  B2/B3, set by ``head_dropout``);
- heads ``BatchNorm1d(E) -> ReLU -> Linear(E, E/2)`` on the crop ("car") [vis_car_fc] and motion [vis_motion_fc]
  embeddings; merged visual embedding ``Linear(E, E) -> BatchNorm1d -> ReLU -> Linear(E, E)`` on
  ``concat(car, motion)`` [domian_vis_fc_merge];
- text: the frozen encoder's pooled output (E_t) -> ``LayerNorm(E_t) -> Linear(E_t, E) -> ReLU -> Linear(E, E)``
  [domian_lang_fc] -> the text embedding; two heads ``LayerNorm(E) -> ReLU -> Linear(E, E/2)`` "car" and
  "motion" [lang_car_fc, lang_motion_fc]. With RoBERTa-large E_t = E = 1024 exactly as published; a smaller
  encoder (MiniLM: E_t = 384) is projected to E by the first Linear of the same block (the only change);
- every embedding L2-normalised; a learnable ``logit_scale`` initialised at 1, used as ``exp(logit_scale)``;
- losses: symmetric InfoNCE on (car_v, car_t), (motion_v, motion_t), (merged_v, text); optional ID losses (weight
  0.5 each, classifier ``Linear(E,E) -> BatchNorm1d -> ReLU -> Linear(E, NUM_CLASS)``): ``car_idloss`` on the crop
  stream's E-dim embedding (before its head) [id_cls], ``mo_idloss`` on the motion stream's [id_cls2],
  ``share_idloss`` one classifier on both the text embedding and the merged visual embedding [id_cls3]; all of
  them on the embeddings BEFORE L2 normalisation (``id_on_normalised: false``, published). NUM_CLASS = the number of
  tracks of the whole train-tracks file (``id_classes: train_file``), though training uses the split.

``motion_stream: false`` gives the crop-only single-stream ablation: no motion backbone or heads, the merge block
takes the car head alone (``Linear(E/2, E)``), losses on (car_v, car_t) and (merged_v, text).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from lib.families.backbones import backbone_width, create_backbone, static_same_padding
from lib.families.dual_stream.config import DualStreamModelCfg
from lib.families.text_encoders import FrozenTextEncoder

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# --- model ---------------------------------------------------------------------------------------------------------
class Projection(nn.Module):
    """Pooled backbone features [B, C] -> [B, E]: ``conv1x1`` (SE-ResNeXt) or dropout + Linear (EfficientNet)."""

    def __init__(self, in_dim: int, out_dim: int, kind: Literal["conv1x1", "linear"], dropout: float = 0.0):
        super().__init__()
        self.kind = kind
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc: nn.Module = nn.Conv2d(in_dim, out_dim, kernel_size=1) if kind == "conv1x1" else nn.Linear(in_dim,
                                                                                                          out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(x)
        if self.kind == "conv1x1":
            return self.fc(x[:, :, None, None]).flatten(1)
        return self.fc(x)


def _visual_head(e: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm1d(e), nn.ReLU(), nn.Linear(e, e // 2))


def _text_head(e: int) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(e), nn.ReLU(), nn.Linear(e, e // 2))


def _id_classifier(e: int, n: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(e, e), nn.BatchNorm1d(e), nn.ReLU(), nn.Linear(e, n))


class DualStreamModel(nn.Module):
    def __init__(self, cfg: DualStreamModelCfg, num_classes: int = 0, text_width: int | None = None,
                 text_encoder: FrozenTextEncoder | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        e = cfg.embed_dim
        if e % 2:
            raise ValueError(f"model.embed_dim must be even (heads are E/2 wide), got {e}")
        kind = cfg.proj
        if kind == "auto":
            kind = "conv1x1" if ("seres" in cfg.backbone or "senet" in cfg.backbone) else "linear"
        self.crop_backbone = self._backbone()
        c = backbone_width(self.crop_backbone)
        self.crop_proj = Projection(c, e, kind, cfg.head_dropout)
        self.crop_head = _visual_head(e)
        if cfg.motion_stream:
            self.motion_backbone = self._backbone()
            self.motion_proj = Projection(c, e, kind, cfg.head_dropout)
            self.motion_head = _visual_head(e)
        streams = 2 if cfg.motion_stream else 1
        self.merge = nn.Sequential(nn.Linear(e // 2 * streams, e), nn.BatchNorm1d(e), nn.ReLU(), nn.Linear(e, e))
        # text side: the frozen encoder is not a submodule (never trained, never in checkpoints)
        self._text_encoder = text_encoder
        tw = text_width if text_width is not None else (text_encoder.width if text_encoder is not None else e)
        self.text_width = tw
        self.text_proj = nn.Sequential(nn.LayerNorm(tw), nn.Linear(tw, e), nn.ReLU(), nn.Linear(e, e))
        self.text_car_head = _text_head(e)
        if cfg.motion_stream:
            self.text_motion_head = _text_head(e)
        self.logit_scale = nn.Parameter(torch.tensor(float(cfg.logit_scale_init)))
        self.num_classes = num_classes
        if num_classes > 0:
            if cfg.car_idloss:
                self.id_cls_car = _id_classifier(e, num_classes)
            if cfg.mo_idloss:
                if not cfg.motion_stream:
                    raise ValueError("model.mo_idloss needs the motion stream (model.motion_stream: true)")
                self.id_cls_motion = _id_classifier(e, num_classes)
            if cfg.share_idloss:
                self.id_cls_share = _id_classifier(e, num_classes)
        self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("pixel_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255, persistent=False)

    def _backbone(self) -> nn.Module:
        bb = create_backbone(self.cfg.backbone, self.cfg.backbone_weights, **self.cfg.backbone_kwargs)
        if self.cfg.static_padding_size:
            static_same_padding(bb, self.cfg.static_padding_size)
        return bb

    # -- inputs --------------------------------------------------------------------------------------------------
    def normalize_images(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 [B, H, W, 3] (or float [B, 3, H, W] already normalised) -> normalised float [B, 3, H, W]."""
        if x.dtype == torch.uint8:
            x = x.permute(0, 3, 1, 2).to(self.pixel_mean.dtype)
            return (x - self.pixel_mean) / self.pixel_std
        return x

    @property
    def text_encoder(self) -> FrozenTextEncoder:
        if self._text_encoder is None:
            raise RuntimeError("this model was built without its text encoder (build it with lib.families."
                               "create_model(cfg) to encode raw sentences)")
        return self._text_encoder

    # -- streams -------------------------------------------------------------------------------------------------
    def crop_embedding(self, crops: torch.Tensor) -> torch.Tensor:
        """[B, E] crop-stream embedding (before its head): the ID loss 'car' input."""
        return self.crop_proj(self.crop_backbone(self.normalize_images(crops)))

    def motion_embedding(self, motion: torch.Tensor) -> torch.Tensor:
        return self.motion_proj(self.motion_backbone(self.normalize_images(motion)))

    def merge_heads(self, car: torch.Tensor, motion: torch.Tensor | None) -> torch.Tensor:
        x = car if motion is None else torch.cat([car, motion], dim=-1)
        return self.merge(x)

    def encode_images(self, crops: torch.Tensor, motion: torch.Tensor | None = None) -> torch.Tensor:
        """L2-normalised merged visual embedding [B, E] of crops (+ their tracks' motion maps)."""
        car = self.crop_head(self.crop_embedding(crops))
        mo = self.motion_head(self.motion_embedding(motion)) if self.cfg.motion_stream else None
        return F.normalize(self.merge_heads(car, mo), dim=-1)

    def text_embedding(self, text_feats: torch.Tensor) -> torch.Tensor:
        """Frozen-encoder features [B, E_t] -> unnormalised text embedding [B, E]."""
        return self.text_proj(text_feats.to(self.text_proj[1].weight.dtype))

    def encode_text_features(self, text_feats: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_embedding(text_feats), dim=-1)

    def frozen_encoder(self) -> FrozenTextEncoder:
        """The frozen text encoder, on this model's device (moved there first if needed)."""
        enc = self.text_encoder
        if enc.device != self.logit_scale.device:
            enc.to(self.logit_scale.device)
        return enc

    def encode_text(self, sentences: list[str]) -> torch.Tensor:
        """L2-normalised text embeddings [N, E] of raw sentences (runs the frozen encoder; each sentence alone unless
        its feature cannot depend on its batch-mates)."""
        return self.encode_text_features(self.frozen_encoder().encode(sentences).to(self.logit_scale.device))

    def encode_text_together(self, sentences: list[str]) -> torch.Tensor:
        """L2-normalised text embeddings [N, E] of sentences tokenised as one batch (padded to the longest of them):
        the published way to embed a query's own sentences."""
        return self.encode_text_features(self.frozen_encoder().encode_batch(sentences).to(self.logit_scale.device))

    # -- training forward ----------------------------------------------------------------------------------------
    def forward(self, crops: torch.Tensor, motion: torch.Tensor | None, text_feats: torch.Tensor
                ) -> dict[str, Any]:
        """Every embedding the losses need (normalised pairs), the logit scale and the ID logits."""
        v_crop = self.crop_embedding(crops)
        car_v = self.crop_head(v_crop)
        t = self.text_embedding(text_feats)
        car_t = self.text_car_head(t)
        out: dict[str, Any] = {"logit_scale": self.logit_scale, "id_logits": []}
        mo_v = None
        if self.cfg.motion_stream:
            v_mo = self.motion_embedding(motion)
            mo_v = self.motion_head(v_mo)
            mo_t = self.text_motion_head(t)
            out["pairs"] = [(F.normalize(car_v, dim=-1), F.normalize(car_t, dim=-1)),
                            (F.normalize(mo_v, dim=-1), F.normalize(mo_t, dim=-1))]
        else:
            v_mo = None
            out["pairs"] = [(F.normalize(car_v, dim=-1), F.normalize(car_t, dim=-1))]
        merged = self.merge_heads(car_v, mo_v)
        merged_v = F.normalize(merged, dim=-1)
        text = F.normalize(t, dim=-1)
        out["pairs"].append((merged_v, text))
        if self.num_classes > 0:
            norm = self.cfg.id_on_normalised  # published: False, the classifiers see the embeddings before L2 norm
            if self.cfg.car_idloss:
                out["id_logits"].append(self.id_cls_car(F.normalize(v_crop, dim=-1) if norm else v_crop))
            if self.cfg.mo_idloss and v_mo is not None:
                out["id_logits"].append(self.id_cls_motion(F.normalize(v_mo, dim=-1) if norm else v_mo))
            if self.cfg.share_idloss:
                out["id_logits"].append(self.id_cls_share(text if norm else t))
                out["id_logits"].append(self.id_cls_share(merged_v if norm else merged))
        return out


def build_dual_stream(cfg: Any, num_classes: int = 0, with_text_encoder: bool = True, **_: Any) -> DualStreamModel:
    """Builder registered for family ``dual_stream`` (``lib.families.create_model(cfg)``)."""
    m = cfg.model
    enc = FrozenTextEncoder(m.text_encoder, m.text_pooling, m.text_max_length)
    return DualStreamModel(m, num_classes=num_classes, text_width=enc.width,
                           text_encoder=enc if with_text_encoder else None)

