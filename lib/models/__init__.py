"""Model families, open_clip style: one ``create_model`` entry, per-family configuration dataclasses.

Each family module registers its configuration sections with :func:`lib.config.register_family` and its builder
with :func:`register_builder` when imported; this package imports every family so that a configuration can be
validated and built from its ``family`` name alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lib.config import RunConfig

_BUILDERS: dict[str, Callable[..., Any]] = {}


def register_builder(family: str, builder: Callable[..., Any]) -> None:
    _BUILDERS[family] = builder


def create_model(cfg: RunConfig, **kwargs: Any) -> Any:
    """Build the model of a validated configuration (``lib.config.load_config``)."""
    if cfg.family not in _BUILDERS:
        raise KeyError(f"{cfg.source}: no model builder for family {cfg.family!r}; known: {sorted(_BUILDERS)}")
    return _BUILDERS[cfg.family](cfg, **kwargs)


def _import_families() -> None:
    import importlib

    for mod in ("lib.models.dual_stream", "lib.models.instance"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:  # a real missing dependency inside the family module
                raise


_import_families()
