"""Part Two: the multi-frame instance model family (family ``instance``).

The second codebase of the 2021 winner (``docs/reference.md``, P2.2):

- **visual**: timm ``legacy_seresnext101_32x4d`` (the Cadene network under the same module names), ImageNet weights
  from a local file, classifier removed; the first block of the last stage has stride 1 when one frame is used
  (``nseg == 1``) and 2 otherwise. The feature map goes through two GeM poolings with learnable per-channel ``p``
  (initial 1 and 5), concatenated (2 x 2048). With several frames per sample (``nseg > 1``) the per-frame
  features are fused by a GeM over the segments (initial ``p`` 3).
- **text**: a transformer encoder (RoBERTa-base), fine-tuned, pooler removed; mean and max of the last hidden state
  concatenated. Published pooling covers every position, padding included (``text_pooling: all_tokens``);
  ``text_pooling: masked`` pools the real tokens only.
- **projections**: ``BatchNorm1d -> Linear`` to 4096 for each modality (Kaiming init).
- **shared ClassBlock**: ``Linear(4096, 512) -> BatchNorm1d(512)`` = the 512-d embedding, then ``Dropout ->
  Linear(512, #ids)`` (init N(0, 0.001)); one instance serves both modalities.
- one learnable logit scale (init 1, used as ``exp``, unclamped).

Configuration sections (``params/b48_lr1_w20_clip_e120_dd.yaml`` and friends) are declared below and registered
under the family name ``instance``; :func:`build_instance_model` is the builder used by ``lib.families.create_model``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn import init

from lib.families.instance.config import InstanceModelCfg
from lib.families.instance.data import TextWrap, prepare_sentence
from lib.families.instance.gem import GeM, gem_over_segments

if TYPE_CHECKING:
    from lib.config import RunConfig

FAMILY = "instance"


# --- pieces ----------------------------------------------------------------------------------------------------
def weights_init_kaiming(m: nn.Module) -> None:
    """The reID init of the original (Linear: kaiming fan_out, BN1d: N(1, 0.02))."""
    if isinstance(m, nn.Linear):
        init.kaiming_normal_(m.weight, a=0, mode="fan_out")
        init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm1d):
        init.normal_(m.weight, 1.0, 0.02)
        init.zeros_(m.bias)


def weights_init_classifier(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        init.normal_(m.weight, std=0.001)
        init.zeros_(m.bias)


class ClassBlock(nn.Module):
    """``add_block = Linear -> BN1d`` gives the embedding; ``classifier = Dropout -> Linear`` gives id logits."""

    def __init__(self, input_dim: int, num_classes: int, droprate: float, bottleneck: int = 512) -> None:
        super().__init__()
        self.add_block = nn.Sequential(nn.Linear(input_dim, bottleneck), nn.BatchNorm1d(bottleneck))
        self.add_block.apply(weights_init_kaiming)
        self.classifier = nn.Sequential(nn.Dropout(p=droprate), nn.Linear(bottleneck, num_classes))
        self.classifier.apply(weights_init_classifier)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.add_block(x)
        return f, self.classifier(f)


def projection(in_dim: int, out_dim: int) -> nn.Sequential:
    seq = nn.Sequential(nn.BatchNorm1d(in_dim), nn.Linear(in_dim, out_dim))
    seq.apply(weights_init_kaiming)
    return seq


def set_last_stage_stride(backbone: nn.Module, stride: int) -> None:
    """Set the stride of the last stage's first block (``layer4[0]``: its conv and its downsample branch)."""
    if stride not in (1, 2):
        raise ValueError(f"last_stride must be 1 or 2, got {stride}")
    layer4 = getattr(backbone, "layer4", None)
    if layer4 is None:
        raise ValueError(f"backbone {type(backbone).__name__} has no 'layer4'; the instance family needs a ResNet-"
                         "like backbone (legacy_seresnext*, seresnext*, resnet*)")
    if stride == 2:
        return
    block = layer4[0]
    for m in block.modules():
        if isinstance(m, nn.Conv2d) and m.stride == (2, 2):
            m.stride = (1, 1)
    down = getattr(block, "downsample", None)
    if isinstance(down, nn.Sequential):
        for i, m in enumerate(down):
            if isinstance(m, nn.AvgPool2d) and m.stride in (2, (2, 2)):
                down[i] = nn.Identity()


def build_backbone(mcfg: InstanceModelCfg) -> nn.Module:
    """The timm backbone (weights only from a local file, or random), last-stage stride per the published rule."""
    from lib.families.backbones import create_backbone as timm_backbone

    net = timm_backbone(mcfg.backbone, weights_file=mcfg.backbone_weights)
    stride = mcfg.last_stride if mcfg.last_stride is not None else (1 if mcfg.nseg == 1 else 2)
    set_last_stage_stride(net, stride)
    return net


def load_text_encoder(mcfg: InstanceModelCfg, config_source: str) -> tuple[nn.Module, Any]:
    """(HF encoder without pooler, tokenizer) from a local folder; random weights when ``text_pretrained`` is false."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from lib.families.text_encoders import load_pretrained, resolve_text_encoder

    try:
        folder = resolve_text_encoder(mcfg.text_encoder_path or mcfg.text_encoder)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{config_source}: model.text_encoder: {e}") from None
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    if mcfg.text_pretrained:
        encoder = load_pretrained(folder, add_pooling_layer=False)  # the pooler's weights are unused on purpose
    else:
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
        encoder = AutoModel.from_config(config, add_pooling_layer=False)
    return encoder, tokenizer


# --- the model -------------------------------------------------------------------------------------------------
class InstanceModel(nn.Module):
    """Two encoders tied by one shared classifier over instance ids (see the module docstring)."""

    def __init__(self, mcfg: InstanceModelCfg, num_classes: int, backbone: nn.Module, text_encoder: nn.Module,
                 tokenizer: Any, text_wrap: TextWrap = "literal_cls_sep", normalise_text: bool = True) -> None:
        super().__init__()
        self.mcfg = mcfg
        self.nseg = mcfg.nseg
        self.text_pooling = mcfg.text_pooling
        self.text_wrap = text_wrap
        self.normalise_text = normalise_text
        self.tokenizer = tokenizer
        self.backbone = backbone
        c = backbone.num_features
        self.pool_avg = GeM(c, p=mcfg.gem_p_avg)
        self.pool_max = GeM(c, p=mcfg.gem_p_max)
        self.pool_segments = GeM(2 * c, p=mcfg.gem_p_segments) if mcfg.nseg > 1 else None
        self.text_encoder = text_encoder
        if mcfg.freeze_text:
            for p in self.text_encoder.parameters():
                p.requires_grad_(False)
        e = text_encoder.config.hidden_size
        self.visual_fc = projection(2 * c, mcfg.proj_dim)
        self.lang_fc = projection(2 * e, mcfg.proj_dim)
        self.classifier = ClassBlock(mcfg.proj_dim, num_classes, mcfg.droprate, mcfg.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(float(mcfg.logit_scale_init)))
        self.num_classes = num_classes
        # training loss settings (train.loss / train.same_id), set by the family from the configuration
        self.loss_kind: Literal["dd", "clip"] = "dd"
        self.same_id: Literal["zero_logit", "exclude"] = "zero_logit"

    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    # visual
    def visual_features(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, nseg, 3, H, W)`` (or ``(B*nseg, 3, H, W)``) -> pooled ``(B, 2C)`` before the projection."""
        if images.dim() == 5:
            images = images.flatten(0, 1)
        fmap = self.backbone.forward_features(images)
        feats = torch.cat([self.pool_avg(fmap), self.pool_max(fmap)], dim=1)
        if self.pool_segments is not None:
            feats = gem_over_segments(self.pool_segments, feats, self.nseg)
        return feats

    def encode_images(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (512-d embedding, id logits)."""
        return self.classifier(self.visual_fc(self.visual_features(images)))

    # text
    def tokenize(self, texts: list[str], pad_to: int | None = None) -> dict[str, torch.Tensor]:
        """Tokenise already prepared (normalised, wrapped) texts together, padding to the longest (or to ``pad_to``
        tokens: the longest of the global batch under DDP), no truncation."""
        if pad_to is None:
            enc = self.tokenizer(texts, padding="longest", return_tensors="pt")
        else:
            enc = self.tokenizer(texts, padding="max_length", max_length=pad_to, return_tensors="pt")
        return {"input_ids": enc["input_ids"].to(self.device), "attention_mask": enc["attention_mask"].to(self.device)}

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.text_pooling == "all_tokens":
            return torch.cat([hidden.mean(dim=1), hidden.max(dim=1).values], dim=1)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        mx = hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).max(dim=1).values
        return torch.cat([mean, mx], dim=1)

    def encode_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.classifier(self.lang_fc(self.text_features(input_ids, attention_mask)))

    def prepare_texts(self, sentences: list[str]) -> list[str]:
        return [prepare_sentence(s, self.text_wrap, self.normalise_text) for s in sentences]

    def encode_text(self, sentences: list[str]) -> torch.Tensor:
        """Raw sentences -> L2-normalised 512-d embeddings (tokenised together, as the published test does)."""
        emb, _ = self.encode_tokens(**self.tokenize(self.prepare_texts(list(sentences))))
        return F.normalize(emb, dim=1)

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
                ) -> dict[str, torch.Tensor]:
        # the shared ClassBlock sees the text batch first, then the visual one (the original's order: its BatchNorm
        # running statistics are updated in that order, docs/reference.md P2.8)
        t, t_logits = self.encode_tokens(input_ids, attention_mask)
        v, v_logits = self.encode_images(images)
        return {"visual": v, "text": t, "visual_logits": v_logits, "text_logits": t_logits,
                "logit_scale": self.logit_scale}

    def param_groups(self, lr: float, backbone_mult: float, text_mult: float) -> list[dict[str, Any]]:
        """Published groups: backbone + GeM exponents + logit scale at ``backbone_mult * lr``, the text encoder at
        ``text_mult * lr``, projections and the shared classifier at ``lr``."""
        slow = [*self.backbone.parameters(), *self.pool_avg.parameters(), *self.pool_max.parameters(),
                self.logit_scale]
        if self.pool_segments is not None:
            slow += list(self.pool_segments.parameters())
        text = [p for p in self.text_encoder.parameters() if p.requires_grad]
        fast = [*self.visual_fc.parameters(), *self.lang_fc.parameters(), *self.classifier.parameters()]
        groups = [{"params": slow, "lr": backbone_mult * lr, "name": "backbone"},
                  {"params": text, "lr": text_mult * lr, "name": "text"},
                  {"params": fast, "lr": lr, "name": "heads"}]
        n_all = sum(1 for p in self.parameters() if p.requires_grad)
        n_groups = sum(len(g["params"]) for g in groups)
        if n_all != n_groups:  # every trainable parameter in exactly one group
            raise RuntimeError(f"param_groups covers {n_groups} of {n_all} trainable parameters")
        return [g for g in groups if g["params"]]


def build_instance_model(cfg: RunConfig, num_classes: int | None = None) -> InstanceModel:
    """Builder registered for ``lib.families.create_model``: ``num_classes`` from the data unless the config sets it."""
    mcfg: InstanceModelCfg = cfg.model
    n = mcfg.num_classes if mcfg.num_classes is not None else num_classes
    if n is None:
        raise ValueError(f"{cfg.source}: model.num_classes is not set and no training data gave it")
    backbone = build_backbone(mcfg)
    text_encoder, tokenizer = load_text_encoder(mcfg, cfg.source)
    model = InstanceModel(mcfg, int(n), backbone, text_encoder, tokenizer, text_wrap=cfg.data.text_wrap,
                          normalise_text=cfg.data.normalise_text)
    model.loss_kind, model.same_id = cfg.train.loss, cfg.train.same_id  # read by the family's compute_loss
    return model

