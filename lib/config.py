"""Parameter files: loading with ``extends``, and strict validation against declared fields.

A model configuration (``params/<name>.yaml``) has top-level keys ``name``, ``family``, ``ensemble_weight`` and the
sections ``model``, ``data``, ``train`` and ``embed``. A file may start from another with ``extends: other.yaml``
(resolved relative to the file); mappings merge recursively, everything else is replaced. Each family declares the
dataclasses that define its sections (``lib.families``); an unknown key anywhere is a :class:`ConfigError` that
names the file, the section, the key and the allowed keys, raised before anything runs.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from lib.errors import InputError
from lib.paths import PARAMS

T = typing.TypeVar("T")

TOP_LEVEL_KEYS = ("name", "family", "part", "ensemble_weight", "description", "model", "data", "train", "embed")
SECTIONS = ("model", "data", "train", "embed")


class ConfigError(InputError):
    """A parameter file or dictionary that does not match its declared fields."""


def parse_override(text: str | None, option: str = "--override") -> dict[str, Any] | None:
    """The JSON object of a command line's ``--override`` (None when not given); malformed JSON is a ConfigError."""
    if not text:
        return None
    import json

    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{option}: invalid JSON at column {e.colno}: {e.msg} (got {text!r})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{option}: expected a JSON object of nested overrides, got {type(data).__name__}")
    return data


def merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` merged in: mappings recursively, everything else replaced (inputs untouched)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def resolve_params_path(name_or_path: str | os.PathLike[str]) -> Path:
    """Accept ``params/x.yaml``, an absolute path, or a bare configuration name (``x``)."""
    p = Path(name_or_path)
    if p.exists():
        return p.resolve()
    for cand in (PARAMS / p, PARAMS / f"{p}.yaml", PARAMS / "profiles" / f"{p}.yaml"):
        if cand.exists():
            return cand.resolve()
    raise FileNotFoundError(f"{name_or_path}: no such parameter file (looked in {PARAMS})")


def load_yaml(path: str | os.PathLike[str], _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Load a YAML mapping, following ``extends`` chains."""
    path = resolve_params_path(path)
    if path in _seen:
        raise ConfigError(f"{path}: 'extends' cycle through {[str(s) for s in _seen]}")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    parent = data.pop("extends", None)
    if parent is not None:
        base_path = (path.parent / parent) if not Path(parent).is_absolute() else Path(parent)
        if not base_path.exists():
            base_path = resolve_params_path(parent)
        data = merge(load_yaml(base_path, _seen + (path,)), data)
    return data


def check_keys(given: Mapping[str, Any], allowed: typing.Iterable[str], where: str) -> None:
    """Raise a ConfigError naming every unknown key in ``given`` and listing the allowed ones."""
    allowed = list(allowed)
    unknown = [k for k in given if k not in allowed]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, allowed, n=1)
            hints.append(f"'{k}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        raise ConfigError(f"{where}: unknown key(s) {', '.join(hints)}; allowed keys: {', '.join(sorted(allowed))}")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (inner, *_) = typing.get_args(tp) or (Any,)
        items = [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {list(typing.get_args(tp))}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str) -> T:
    """Build dataclass ``cls`` from ``data``: unknown keys and wrong types are ConfigErrors naming ``where``."""
    data = dict(data or {})
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    check_keys(data, fields, where)
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for k, v in data.items():
        kwargs[k] = _coerce(v, hints[k], f"{where}.{k}")
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{where}: {e}") from None


def to_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


# --- model configurations ---------------------------------------------------------------------------------
# ``sections`` maps a family name to its section dataclasses ({"model": ModelCfg, "data": ..., "train": ...,
# "embed": ...}); lib.families.load_config passes the registry's lookup (lib.families.base.family_sections), so this
# module knows no family and imports nothing above the ground floor.
SectionsOf = typing.Callable[[str], Mapping[str, type]]


@dataclasses.dataclass
class RunConfig:
    """A resolved, validated model configuration."""

    name: str
    family: str
    model: Any
    data: Any
    train: Any
    embed: Any
    part: str = "one"
    ensemble_weight: float = 1.0
    description: str = ""
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = to_dict(self)
        d.pop("source", None)
        return d

    def weights_hash(self) -> str:
        """sha256 of the canonical JSON of what the trained weights depend on: :meth:`to_dict` without the
        ``embed`` section, ``ensemble_weight`` and ``description`` (those may change after training). Recorded in
        every checkpoint; embedding, resuming and searching refuse a checkpoint whose hash differs."""
        import hashlib
        import json

        d = {k: v for k, v in self.to_dict().items() if k not in ("embed", "ensemble_weight", "description")}
        return hashlib.sha256(json.dumps(d, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def parse_config(raw: Mapping[str, Any], source: str, sections: SectionsOf) -> RunConfig:
    """Validate a raw configuration mapping (as loaded from YAML or passed to a notebook); ``sections(family)``
    gives the family's section dataclasses (use :func:`lib.families.parse_config`, which passes the registry)."""
    raw = dict(raw)
    check_keys(raw, TOP_LEVEL_KEYS, source)
    for key in ("name", "family"):
        if key not in raw:
            raise ConfigError(f"{source}: missing required key '{key}'")
    fam = raw["family"]
    try:
        declared = sections(fam)
    except KeyError as e:
        raise ConfigError(f"{source}: family: {e.args[0] if e.args else fam}") from None
    secs = {s: from_dict(declared[s], raw.get(s), f"{source}: {s}") for s in SECTIONS}
    weight = raw.get("ensemble_weight", 1.0)
    return RunConfig(name=str(raw["name"]), family=fam, part=str(raw.get("part", "one")),
                     ensemble_weight=_coerce(weight, float, f"{source}: ensemble_weight"),
                     description=str(raw.get("description", "")), source=source, **secs)


def load_config(path: str | os.PathLike[str], overrides: Mapping[str, Any] | None, sections: SectionsOf
                ) -> RunConfig:
    """Load and validate a model configuration file, with optional nested overrides (``lib.families.load_config``
    is the door that passes the family registry as ``sections``)."""
    p = resolve_params_path(path)
    raw = load_yaml(p)
    if overrides:
        raw = merge(raw, overrides)
    return parse_config(raw, str(p.relative_to(PARAMS.parent)) if p.is_relative_to(PARAMS.parent) else str(p),
                        sections)
