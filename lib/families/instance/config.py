"""Part Two configuration sections (``model``, ``data``, ``train``, ``embed`` of an ``instance`` params file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from lib.config import ConfigError
from lib.families.base import BaseTrainCfg
from lib.families.instance.data import TextWrap
from lib.text.train_aug import TextAugConfig, train_aug_config


# --- configuration ---------------------------------------------------------------------------------------------
@dataclass
class InstanceModelCfg:
    backbone: str = "legacy_seresnext101_32x4d"
    # Local ImageNet weights for the backbone (timm ``pretrained_cfg_overlay=dict(file=...)``; environment variables
    # expand, e.g. ``${CFNL_MODELS_DIR}/legacy_seresnext101_32x4d.in1k/model.safetensors``). null: random init.
    backbone_weights: str | None = None
    last_stride: int | None = None  # None = published rule: 1 when nseg == 1, else 2
    nseg: int = 1  # frames per training sample / gallery feature (segments)
    crop_size: int = 256
    gem_p_avg: float = 1.0
    gem_p_max: float = 5.0
    gem_p_segments: float = 3.0
    text_encoder: str = "roberta-base"  # a local folder name (CFNL_MODELS_DIR/<name>) or the packaged MiniLM
    text_encoder_path: str | None = None  # explicit local folder; wins over text_encoder
    text_pretrained: bool = True  # false: the folder's architecture (config.json) with random weights
    text_pooling: Literal["all_tokens", "masked"] = "all_tokens"  # published: padding included
    freeze_text: bool = False  # the original's --fixed (not used by the final models)
    proj_dim: int = 4096
    embed_dim: int = 512
    droprate: float = 0.5
    num_classes: int | None = None  # None: from the training data (published: one per training track, 2498)
    logit_scale_init: float = 1.0


@dataclass
class InstanceDataCfg:
    pad: float = 0.0  # crop margin as a fraction of the full frame's width/height
    multi: int = 10  # dataset length = multi x #tracks
    pad_pixels: int = 10  # Pad(10) before RandomCrop
    erasing_p: float = 0.5
    text_wrap: TextWrap = "literal_cls_sep"  # published: literal "[CLS]"+s+"[SEP]"; "none" = corrected
    normalise_text: bool = True
    duplicate_unique_sentences: bool = True  # the published default clear JSON (commit 3dd8f3a)
    reindex_ids: bool = False  # published: no re-indexing (one classifier output per training track)
    # Training-time text augmentation and left/right flip (lib.text.train_aug, not in the original): probabilities
    # per sample p_synonym, p_swap, p_delete, p_spelling, p_flip (0 when not given), and word_p, max_words.
    # Empty = off (every paper configuration). p_flip mirrors all nseg crops of the sample.
    train_aug: dict[str, Any] = field(default_factory=dict)
    # Train on padded crops cut once per frame (at crop_size, bicubic, as the per-sample path makes them) and kept
    # as JPEG in camera shards (PREP/cache/crop_store, lib.families.crop_store) instead of decoding the full frame
    # per sample (the original's way, false). Same draws; pixels within JPEG tolerance (docs/fidelity_switches.md).
    crop_store: bool = False
    crop_store_quality: int = 95  # JPEG quality (4:4:4 chroma); a shard whose worst crop is under 30 dB is an error

    def __post_init__(self) -> None:
        try:
            train_aug_config(self.train_aug)
        except ValueError as e:
            raise ConfigError(f"data.train_aug: {e}") from None
        if not 50 <= self.crop_store_quality <= 100:
            raise ConfigError(f"data.crop_store_quality must be 50..100, got {self.crop_store_quality}")

    @property
    def train_aug_cfg(self) -> TextAugConfig:
        """``train_aug`` validated (:func:`lib.text.train_aug.train_aug_config`)."""
        return train_aug_config(self.train_aug)


@dataclass
class InstanceTrainCfg(BaseTrainCfg):
    """Published optimisation (``docs/reference.md``, P2.4); the generic fields are documented in lib.families.base.

    One epoch = ``len(dataset) // batch_size`` steps with ``len(dataset) = data.multi x #train tracks``, as in the
    original (shuffle + drop_last over ten copies of the track list).
    """

    batch_size: int = 48
    lr: float = 0.01
    epochs: float | None = 120
    warm_epochs: float = 20.0  # loss warm-up factor 0.1 -> 1 over warm_epochs * round(N / B) iterations
    loss: Literal["dd", "clip"] = "dd"
    same_id: Literal["zero_logit", "exclude"] = "zero_logit"  # clip loss only
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    backbone_lr_mult: float = 0.1  # backbone, GeM exponents and logit scale
    text_lr_mult: float = 0.1
    milestones: list[float] = field(default_factory=lambda: [0.8, 0.95])  # fractions of the epochs (rounded)
    gamma: float = 0.1
    # Published: MultiStepLR.step() runs at the start of every epoch, so each drop comes one epoch early.
    lr_drop_one_epoch_early: bool = True
    val_frames_per_track: int | None = None  # None: embed.frames, as at test time (nseg > 1: always nseg)


@dataclass
class InstanceEmbedCfg:
    frames: int = 4  # evenly spaced frames per gallery track (nseg > 1: nseg frames, one fused feature)
    # Gallery (and validation) crops use the training pad, as the authors ran their test script (--pad passed by
    # hand, docs/reference.md P2.5); "zero" is the defect-compatible option: the script does not restore ``pad``
    # from opts.yaml, so without --pad the crops use pad 0.
    test_pad: Literal["as_trained", "zero"] = "as_trained"
    batch_size: int = 64
    # Gallery: decode a frame at 1/2, 1/4 or 1/8 (libjpeg DCT scaling) when all its crops still have crop_size
    # pixels (lib.families.gallery); false = full resolution, as published (docs/fidelity_switches.md).
    reduced_decode: bool = False
