"""Part One configuration sections (``model``, ``data``, ``train``, ``embed`` of a ``dual_stream`` params file).

Every field documents itself; the published values are the defaults of the paper files in ``params/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from lib.config import ConfigError
from lib.families.base import BaseTrainCfg
from lib.families.text_encoders import Pooling
from lib.text.train_aug import TextAugConfig, train_aug_config


# --- configuration -------------------------------------------------------------------------------------------------
@dataclass
class DualStreamModelCfg:
    backbone: str = "tf_efficientnet_b3"
    """timm model name (paper: legacy_seresnext50_32x4d, tf_efficientnet_b2, tf_efficientnet_b3)."""
    backbone_weights: str | None = None
    """Local pretrained weights file for the backbone (both streams); None = random init."""
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra timm.create_model arguments (e.g. drop_path_rate)."""
    static_padding_size: int | None = None
    """Freeze TF-"same" padding to this input size (260/300 = efficientnet_pytorch's B2/B3), see backbones.py."""
    proj: Literal["auto", "conv1x1", "linear"] = "auto"
    """Projection of pooled features to E: auto = conv1x1 for SE-ResNe(X)t backbones, linear otherwise."""
    head_dropout: float = 0.0
    """Dropout before the projection (published EfficientNet: 0.3; SE-ResNeXt: none)."""
    embed_dim: int = 1024
    image_size: int = 320
    motion_stream: bool = True
    """False: the crop-only single-stream ablation."""
    text_encoder: str = "roberta-large"
    """Local text encoder (see lib.families.text_encoders): all-MiniLM-L6-v2 (packaged), a folder, or a name
    under $CFNL_MODELS_DIR."""
    text_pooling: Pooling = "mean_all"
    text_max_length: int | None = None
    """None (published): pad to the longest sentence of the training batch, and of the query's own sentences at
    test. An integer pads every sentence to that length (a sentence's feature is then a function of itself)."""
    text_dropout: bool = True
    """The frozen encoder runs in train mode while training (its dropout active on every step), as the original's
    whole model was in train(); eval mode at test. Ignored with data.cache_text (features computed once, in eval)."""
    car_idloss: bool = False
    mo_idloss: bool = False
    share_idloss: bool = False
    id_loss_weight: float = 0.5
    id_on_normalised: bool = False
    """Published: the ID classifiers take the embeddings BEFORE L2 normalisation; True feeds the normalised ones."""
    id_classes: Literal["train_file", "split"] = "train_file"
    """Outputs of the ID classifiers: every track of train-tracks.json (published NUM_CLASS 2498, the 100 val
    tracks' outputs are never a target) or only the training split's tracks."""
    logit_scale_init: float = 1.0


@dataclass
class DualStreamDataCfg:
    crop_area: float = 1.0
    """Box expansion factor CROP_AREA (lib.crops.expand_box)."""
    text: Literal["nlpaug", "plain"] = "nlpaug"
    """nlpaug: PREP/text/train-tracks_nlpaug.json (4 sentences); plain: the dataset's nl (3 sentences)."""
    sentences_sampled: int = 3
    """A training sample takes one of the track's first N sentences at random (published: 3)."""
    motion_variant: str = "published"
    cache_crops: bool = True
    """Cache every training/val track's crops (uint8, model input size) and motion maps in PREP/cache/."""
    cache_text: bool = False
    """False (published): run the frozen encoder on every training batch (train mode: dropout active, batch
    padding). True: a speed option, features computed once per sentence in eval mode and cached in PREP/cache/text
    (cannot reproduce the dropout or the batch padding, docs/fidelity_switches.md)."""
    crop_cache_frames: int | None = None
    """At most this many evenly spaced frames per track in the crop cache (None: every frame)."""
    crop_store: bool = False
    """Train on crops cut once per frame and kept as JPEG in camera shards (PREP/cache/crop_store,
    :mod:`lib.families.crop_store`) instead of decoding the full frame per sample (the original's way, false).
    Same frame and sentence draws; pixels within JPEG tolerance of the direct crop (docs/fidelity_switches.md)."""
    crop_store_quality: int = 95
    """JPEG quality of the crop store (4:4:4 chroma); a shard whose worst crop falls under 30 dB PSNR is an error."""
    crop_store_decode: Literal["workers", "device"] = "workers"
    """Where the stored crops are decoded: "workers" = the DataLoader workers (OpenCV); "device" = the training
    device, batched (torchvision decode_jpeg: nvjpeg on CUDA), the workers only read bytes. Same pixels on the CPU."""
    train_aug: dict[str, Any] = field(default_factory=dict)
    """Training-time text augmentation and left/right flip (lib.text.train_aug, not in the original): probabilities
    per sample p_synonym, p_swap, p_delete, p_spelling, p_flip (0 when not given), and word_p, max_words. Empty =
    off (every paper configuration). The word augmenters need cache_text: false; p_flip mirrors crop + motion map."""
    motion_rot90: float = 0.0
    """Probability that a training sample's motion map is turned by 90, 180 or 270 degrees (one of the three at random;
    not in the original, 0 in every paper configuration). A rotation keeps a turn's direction (left stays left), so
    the sentence stays true; only the motion stream sees it. Draws from the sample's own seed (deterministic)."""

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.motion_rot90) <= 1.0:
            raise ConfigError(f"data.motion_rot90 must be a probability in [0, 1], got {self.motion_rot90!r}")
        try:
            aug = train_aug_config(self.train_aug)
        except ValueError as e:
            raise ConfigError(f"data.train_aug: {e}") from None
        if self.crop_store_decode == "device" and not self.crop_store:
            raise ConfigError("data.crop_store_decode: device decodes the crop store's JPEGs: set "
                              "data.crop_store: true")
        if self.crop_store and self.cache_crops:
            raise ConfigError("data.crop_store and data.cache_crops are two crop caches: set one of them to false")
        if not 50 <= self.crop_store_quality <= 100:
            raise ConfigError(f"data.crop_store_quality must be 50..100, got {self.crop_store_quality}")
        if aug.changes_words and self.cache_text:
            raise ConfigError("data.train_aug: p_synonym / p_swap / p_delete / p_spelling change the sentences, which "
                              "cached text features cannot follow: set data.cache_text: false")

    @property
    def train_aug_cfg(self) -> TextAugConfig:
        """``train_aug`` validated (:func:`lib.text.train_aug.train_aug_config`)."""
        return train_aug_config(self.train_aug)


@dataclass
class DualStreamTrainCfg(BaseTrainCfg):
    weight_decay: float = 0.01
    """AdamW weight decay (PyTorch default, as the original)."""
    adam_eps: float = 1e-8
    """AdamW epsilon (PyTorch default, as the original)."""
    warmup_epochs: float = 40.0
    warmup_steps: int | None = None
    warmup_lr: float = 1e-7
    lr_decay: float = 0.1
    lr_decay_every_epochs: float | None = 240.0
    lr_decay_every_steps: int | None = None
    original_val: bool = True
    """Also log the original's validation at every validation (``val_top1_original`` / ``val_top5_original`` in
    history.json: the val split as one batch, car pair, frame 0, sentence 2; P1.6) next to the val MRR."""
    lr_decay_from: Literal["warmup_end", "start"] = "warmup_end"
    """Count the step decay from the end of the warm-up (published) or from step 0."""
    drop_last: bool = False
    """Published: the last partial batch of a pass is kept (a pass over 2398 tracks is 38 steps of 64)."""


@dataclass
class DualStreamEmbedCfg:
    frames_per_track: int | None = None
    """Gallery: at most this many evenly spaced frames per track (None: every frame, published)."""
    batch_size: int = 64
    text_batch_size: int = 64
    reduced_decode: bool = False
    """Gallery: decode a frame at 1/2, 1/4 or 1/8 (libjpeg DCT scaling) when all its crops still have their input
    size of pixels (lib.families.gallery); false = full resolution, as published (docs/fidelity_switches.md)."""
    decode_device: str | None = None
    """Gallery: decode the frames with torchvision's decode_jpeg on this device ("cuda": nvjpeg; "cpu") and crop with
    torch ops there; null = PIL on the CPU, as published. Not with reduced_decode. Tracks in the crop cache
    (data.cache_crops: the CPU variants' train/val tracks) are embedded from it: both apply to decoded frames."""
