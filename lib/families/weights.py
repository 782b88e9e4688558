"""Trained weights: read a ``*.safetensors`` export of the trainer (weights + metadata ``{"family", "config",
"step", "model_kwargs"}``) and rebuild its model through the one door, :func:`lib.families.create_model`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from lib.errors import ConfigMismatchError, CorruptFileError, MissingInputError
from lib.families.base import get_family
from lib.io import save_safetensors

if TYPE_CHECKING:
    from lib.config import RunConfig


def save_weights(path: str | os.PathLike[str], model: nn.Module, cfg: RunConfig, step: int,
                 model_kwargs: dict[str, Any], extra: dict[str, Any] | None = None) -> Path:
    meta = {"family": cfg.family, "config": cfg.name, "config_hash": cfg.weights_hash(), "step": str(step),
            "model_kwargs": json.dumps(model_kwargs)}
    for k, v in (extra or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    return save_safetensors(path, dict(model.state_dict()), metadata=meta)


def _unreadable(path: str | os.PathLike[str], e: Exception) -> CorruptFileError:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return CorruptFileError(f"{path}: not a readable safetensors checkpoint (truncated or damaged?): {first}")


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    from safetensors import safe_open

    if not Path(path).exists():
        raise MissingInputError(f"{path}: checkpoint not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types (and OSError) for bad files
        raise _unreadable(path, e) from e


def load_weights(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not Path(path).exists():
        raise MissingInputError(f"{path}: checkpoint not found")
    try:
        return load_file(str(path), device=str(device))
    except Exception as e:  # noqa: BLE001 - as above
        raise _unreadable(path, e) from e


def config_mismatch(cfg: RunConfig, checkpoint: str | os.PathLike[str], meta: dict[str, str] | None = None
                    ) -> str | None:
    """Why ``checkpoint`` was not trained with ``cfg`` (one line naming both), or None when it was. A checkpoint
    written before hashes were recorded is compared by configuration name only."""
    meta = read_metadata(checkpoint) if meta is None else meta
    name, digest = meta.get("config"), meta.get("config_hash")
    if name and name != cfg.name:
        return (f"{checkpoint}: trained with configuration {name!r}, not {cfg.name!r} ({cfg.source}); pass the "
                f"configuration it was trained with")
    if digest and digest != cfg.weights_hash():
        return (f"{checkpoint}: trained with another resolution of configuration {cfg.name!r} (hash "
                f"{digest[:12]}) than {cfg.source} gives now (hash {cfg.weights_hash()[:12]}): the YAML, a parent "
                f"or the overrides changed; retrain, or pass the same overrides")
    return None


def load_trained_model(cfg: RunConfig, checkpoint: str | os.PathLike[str], device: str | torch.device | None = None,
                       allow_config_mismatch: bool = False) -> nn.Module:
    """Rebuild the model of ``cfg`` with the architecture recorded in ``checkpoint`` (a ``*.safetensors`` written
    by the trainer), load its weights (strict) and return it in eval mode on ``device``. A checkpoint trained
    with another configuration (name or :meth:`RunConfig.weights_hash`) is a ``ConfigMismatchError`` naming both,
    unless ``allow_config_mismatch``."""
    if device is None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    meta = read_metadata(checkpoint)
    why = config_mismatch(cfg, checkpoint, meta)
    if why is not None and not allow_config_mismatch:
        raise ConfigMismatchError(why + " (lib.embed --allow-config-mismatch overrides)")
    if meta.get("family") and meta["family"] != cfg.family:
        raise ConfigMismatchError(f"{checkpoint}: checkpoint of family {meta['family']!r}, configuration "
                                  f"{cfg.source} is family {cfg.family!r}")
    model_kwargs = json.loads(meta.get("model_kwargs", "{}"))
    model = get_family(cfg.family).build_model(cfg, **model_kwargs)  # = lib.families.create_model
    try:
        missing, unexpected = model.load_state_dict(load_weights(checkpoint), strict=False)
    except RuntimeError as e:  # shape mismatches raise even with strict=False
        shapes = [ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln]
        raise ConfigMismatchError(f"{checkpoint}: weights do not fit configuration {cfg.source}: "
                                  f"{shapes[0] if shapes else str(e).splitlines()[0]}"
                                  + (f" (+{len(shapes) - 1} more)" if len(shapes) > 1 else "")) from e
    if missing or unexpected:
        raise ConfigMismatchError(f"{checkpoint}: weights do not match configuration {cfg.source}: missing "
                           f"{missing[:10]}{'...' if len(missing) > 10 else ''}, unexpected "
                           f"{unexpected[:10]}{'...' if len(unexpected) > 10 else ''}")
    return model.to(device).eval()
