"""Vision backbones from timm, with pretrained weights only from a local file.

``create_backbone(name, weights_file=None)`` is ``timm.create_model(name, pretrained=bool(weights_file),
num_classes=0, pretrained_cfg_overlay=dict(file=weights_file))``: the classifier is removed and the model returns
globally pooled features (``model.num_features`` wide). Paper configurations name their ImageNet weights as
``${CFNL_MODELS_DIR}/<timm name>.in1k/model.safetensors`` (the layout of the timm checkpoints on the Hugging Face
hub); a missing file is an error that says how to provide it.

``static_same_padding(model, image_size)`` freezes the "same" padding of TF-ported EfficientNets to the padding
that ``efficientnet_pytorch`` computes for a fixed image size (it pads for 260 px (B2) / 300 px (B3) whatever the
input): with it, the authors' released EfficientNet weights give their exact activations at 288/320 px inputs.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class MissingWeightsError(FileNotFoundError):
    pass


def resolve_weights_file(weights_file: str | os.PathLike[str] | None, name: str = "") -> Path | None:
    if weights_file is None or str(weights_file) == "":
        return None
    raw = str(weights_file)
    expanded = os.path.expandvars(os.path.expanduser(raw))
    p = Path(expanded)
    if "$" in expanded or not p.is_file():
        unset = " (an environment variable in it is not set)" if "$" in expanded else ""
        # the folder names the timm weights tag (tf_efficientnet_b3.aa_in1k: the AutoAugment weights the authors used)
        tag = p.parent.name if "." in p.parent.name else f"{name}.in1k"
        raise MissingWeightsError(
            f"backbone {name}: pretrained weights file {raw!r} -> {expanded!r} not found{unset}. No model hub is "
            f"used: download the timm checkpoint '{tag}' (the file model.safetensors of the hub repository "
            f"timm/{tag}) on a machine with network access and place it at that path (set CFNL_MODELS_DIR to "
            f"the folder that holds '{tag}/model.safetensors'), or set model.backbone_weights: null to start "
            f"from random weights")
    return p.resolve()


def create_backbone(name: str, weights_file: str | os.PathLike[str] | None = None, **kwargs: Any) -> nn.Module:
    """A timm model without classifier (pooled features); weights from ``weights_file`` or random.

    ``bn_momentum`` (PyTorch convention: the weight of the new batch in the running statistics) is set on every
    BatchNorm layer of the model after it is built, so it means the same for every family: timm's EfficientNet
    builders take it as an argument (and give it to every BatchNorm layer), its ResNets do not."""
    import timm

    bn_momentum = kwargs.pop("bn_momentum", None)
    path = resolve_weights_file(weights_file, name)
    overlay = dict(file=str(path)) if path is not None else None
    try:
        model = timm.create_model(name, pretrained=path is not None, num_classes=0, pretrained_cfg_overlay=overlay,
                                  **kwargs)
    except RuntimeError as e:
        if "Unknown model" in str(e):
            raise ValueError(f"unknown timm backbone {name!r}: {e}") from None
        raise
    if bn_momentum is not None:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum = float(bn_momentum)
    return model


def backbone_width(model: nn.Module) -> int:
    """Width of the pooled features a timm model returns with ``num_classes=0`` (MobileNetV3-like models have a
    head convolution after pooling: ``head_hidden_size``)."""
    return int(getattr(model, "head_hidden_size", None) or model.num_features)


def _static_pad(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def _static_forward(conv: nn.Conv2d, pads: tuple[int, int, int, int], x: torch.Tensor) -> torch.Tensor:
    return conv._conv_forward(F.pad(x, pads), conv.weight, conv.bias)


def static_same_padding(model: nn.Module, image_size: int) -> nn.Module:
    """Replace every dynamic-"same"-padding conv of a timm TF model (``Conv2dSame``) by a fixed padding computed for
    ``image_size`` x ``image_size`` inputs, like ``efficientnet_pytorch``'s ``Conv2dStaticSamePadding``.
    Parameter names are unchanged (the wrapper's forward calls the original conv's kernel)."""
    from timm.layers import Conv2dSame

    sizes: dict[str, tuple[int, int]] = {}
    hooks = []
    for name, mod in model.named_modules():
        if isinstance(mod, Conv2dSame):
            hooks.append(mod.register_forward_pre_hook(
                lambda m, inp, name=name: sizes.__setitem__(name, tuple(inp[0].shape[-2:]))))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        p = next(model.parameters())
        model(torch.zeros(1, 3, image_size, image_size, dtype=p.dtype, device=p.device))
    model.train(was_training)
    for h in hooks:
        h.remove()
    for name, (h, w) in sizes.items():
        mod = model.get_submodule(name)
        kh, kw = mod.weight.shape[-2:]
        ph = _static_pad(h, kh, mod.stride[0], mod.dilation[0])
        pw = _static_pad(w, kw, mod.stride[1], mod.dilation[1])
        mod.forward = functools.partial(_static_forward, mod, (pw[0], pw[1], ph[0], ph[1]))  # type: ignore
    return model
