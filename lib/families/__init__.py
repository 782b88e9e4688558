"""Model families: one package per family, one registry, one door.

- ``lib/families/dual_stream/`` — Part One (crop + motion-map streams, frozen language model);
- ``lib/families/instance/`` — Part Two (multi-frame instance model, fine-tuned language model).

Each family package is laid out the same way (torchtune style, a small face over private builders):
``config`` (its section dataclasses), ``model``, ``data``, ``loss``, ``family`` (the object registered in
:mod:`lib.families.base`, which ties configuration sections, builder, data, losses and scoring rule together) and
``authors`` (the importer of the original authors' checkpoints). Blocks shared by families live beside them:
``backbones`` (timm), ``text_encoders`` (Hugging Face Auto classes), ``images`` (decode/crop/resize rules),
``gallery`` (the gallery pass), ``weights`` (reading trained weights).

Both families are imported here statically (timm style), so importing :mod:`lib.families` registers them all.
The door for everyone — the trainer, the embedder, the search, the importers and the tests — is::

    cfg = load_config("params/motion_SE_3CLS_nonlpaug_288.yaml", overrides)
    model = create_model(cfg, num_classes=...)            # an untrained model of that configuration
    model = load_trained_model(cfg, "OUT/best.safetensors")  # the trained one, eval mode
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from lib import config as _config
from lib.families import dual_stream, instance  # noqa: F401  (registers both families)
from lib.families.base import (
    BaseTrainCfg,
    Family,
    SampleKey,
    TrainContext,
    evenly_spaced,
    family_names,
    family_sections,
    get_family,
)
from lib.families.weights import load_trained_model

__all__ = ["BaseTrainCfg", "Family", "SampleKey", "TrainContext", "create_model", "evenly_spaced", "family_names",
           "get_family", "load_config", "load_trained_model", "parse_config"]


def load_config(path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None) -> _config.RunConfig:
    """Load and validate a model configuration file (``params/<name>.yaml``, a path, or a bare name), with
    optional nested overrides; any unknown key is a ConfigError naming the file, section and key."""
    return _config.load_config(path, overrides, family_sections)


def parse_config(raw: Mapping[str, Any], source: str = "<dict>") -> _config.RunConfig:
    """Validate a raw configuration mapping against its family's sections."""
    return _config.parse_config(raw, source, family_sections)


def create_model(cfg: _config.RunConfig, **model_kwargs: Any) -> Any:
    """Build the (untrained) model of a validated configuration: the family's one builder."""
    return get_family(cfg.family).build_model(cfg, **model_kwargs)
