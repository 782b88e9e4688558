"""Checkpoints know their configuration: a checkpoint records its configuration's name and hash; embedding (and
search, through ``load_trained_model``) refuses another configuration with one line naming both, unless
``--allow-config-mismatch``, which embedding.json then records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lib.cli import run_main
from lib.families import create_model, load_config
from lib.families.weights import read_metadata, save_weights
from lib.paths import ROOT
from tests.helpers.track_dataset import make_mini_dataset, tiny_overrides

A = "params/motion_effb3_NOCLS_nlpaug_320.yaml"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("ckcfg")
    data, prep = make_mini_dataset(root, n_tracks=8, n_val=2)
    cfg = load_config(A, tiny_overrides())
    ck = root / "a.safetensors"
    save_weights(ck, create_model(cfg), cfg, 0, {})
    other = root / "other_config.yaml"  # the same architecture under another name
    other.write_text(f"extends: {ROOT / A}\nname: other_config\n")
    return data, prep, ck, cfg, str(other)


def _embed(setup, tmp_path: Path, config: str, overrides: dict, *extra: str) -> int:
    from lib.embed import main

    data, prep, ck = setup[:3]
    return run_main(main, [config, str(ck), "--data-root", str(data), "--prep-dir", str(prep), "--splits", "val",
                           "--device", "cpu", "--override", json.dumps(overrides), "--out", str(tmp_path / "e"),
                           *extra])


def test_checkpoint_records_name_and_hash(setup) -> None:
    meta = read_metadata(setup[2])
    assert meta["config"] == setup[3].name and meta["config_hash"] == setup[3].weights_hash()
    # the hash ignores what may change after training, and sees what may not
    assert load_config(A, tiny_overrides()).weights_hash() == setup[3].weights_hash()
    assert load_config(A, {**tiny_overrides(), "embed": {"frames_per_track": 2}}).weights_hash() == \
        setup[3].weights_hash()
    assert load_config(A, tiny_overrides(lr=0.5)).weights_hash() != setup[3].weights_hash()


def test_embed_refuses_another_configuration_naming_both(setup, tmp_path: Path, capsys) -> None:
    rc = _embed(setup, tmp_path, setup[4], tiny_overrides())
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0, err
    assert "motion_effb3_NOCLS_nlpaug_320" in err and "other_config" in err and str(setup[2]) in err
    assert not (tmp_path / "e" / "embedding.json").exists()


def test_embed_refuses_changed_overrides(setup, tmp_path: Path, capsys) -> None:
    rc = _embed(setup, tmp_path, A, tiny_overrides(lr=0.5))
    err = capsys.readouterr().err
    assert rc == 2 and "hash" in err and "motion_effb3_NOCLS_nlpaug_320" in err


def test_allow_config_mismatch_is_recorded(setup, tmp_path: Path, capsys) -> None:
    assert _embed(setup, tmp_path, setup[4], tiny_overrides(), "--allow-config-mismatch") == 0
    man = json.loads((tmp_path / "e" / "embedding.json").read_text())
    assert man["name"] == "other_config" and "motion_effb3_NOCLS_nlpaug_320" in man["config_mismatch"]
    assert "--allow-config-mismatch" in capsys.readouterr().out
