"""The strict configuration loader: extends, unknown keys, types."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from lib import config
from lib.config import ConfigError, check_keys, from_dict, load_yaml


@dataclasses.dataclass
class _Model:
    backbone: str = "resnet18"
    image_size: int = 64
    id_losses: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _Data:
    crop_area: float = 1.0


@dataclasses.dataclass
class _Train:
    lr: float = 0.01
    max_steps: int | None = None


@dataclasses.dataclass
class _Embed:
    batch_size: int = 8


_SECTIONS = {"_test_family": {"model": _Model, "data": _Data, "train": _Train, "embed": _Embed}}


def _sections(family: str) -> dict[str, type]:
    if family not in _SECTIONS:
        raise KeyError(f"unknown family {family!r}; known: {sorted(_SECTIONS)}")
    return _SECTIONS[family]


def parse_config(raw: dict, source: str) -> config.RunConfig:
    return config.parse_config(raw, source, _sections)


def test_extends_merges_recursively(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("name: base\nfamily: _test_family\nmodel: {backbone: a, image_size: 320}\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nname: child\nmodel: {image_size: 64}\n")
    raw = load_yaml(tmp_path / "child.yaml")
    assert raw == {"name": "child", "family": "_test_family", "model": {"backbone": "a", "image_size": 64}}


def test_extends_cycle_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_yaml(tmp_path / "a.yaml")


def test_unknown_key_names_key_section_and_allowed() -> None:
    with pytest.raises(ConfigError) as e:
        from_dict(_Model, {"backbon": "x"}, "params/x.yaml: model")
    msg = str(e.value)
    assert "params/x.yaml: model" in msg and "'backbon'" in msg and "did you mean 'backbone'" in msg
    assert "allowed keys: backbone, id_losses, image_size" in msg


def test_types_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"model.image_size: expected an integer"):
        from_dict(_Model, {"image_size": "big"}, "f: model")
    with pytest.raises(ConfigError, match=r"id_losses\[0\]: expected a string"):
        from_dict(_Model, {"id_losses": [1]}, "f: model")
    assert from_dict(_Train, {"lr": 1, "max_steps": None}, "f: train") == _Train(lr=1.0, max_steps=None)


def test_parse_config_checks_top_level_and_family() -> None:
    cfg = parse_config({"name": "n", "family": "_test_family", "model": {"image_size": 32}}, "mem")
    assert cfg.model.image_size == 32 and cfg.data.crop_area == 1.0
    with pytest.raises(ConfigError, match="unknown key"):
        parse_config({"name": "n", "family": "_test_family", "modle": {}}, "mem")
    with pytest.raises(ConfigError, match="unknown family"):
        parse_config({"name": "n", "family": "nope"}, "mem")
    with pytest.raises(ConfigError, match="missing required key 'family'"):
        parse_config({"name": "n"}, "mem")


def test_check_keys_passes_on_known_keys() -> None:
    check_keys({"a": 1}, ["a", "b"], "where")
