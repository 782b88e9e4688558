"""Pre-flight (lib.preflight): everything a run needs is checked, and listed at once, before any notebook runs."""

from __future__ import annotations

import json
import shutil
from collections import namedtuple
from pathlib import Path

import pytest

from lib import pipeline, preflight
from lib.preflight import PreflightError

_Usage = namedtuple("_Usage", "total used free")


def _kinds(err: PreflightError) -> list[str]:
    return [n.kind for n in err.needs]


def test_paper_profile_without_weights_encoders_or_data_lists_everything(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CFNL_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.delenv("CFNL_MODELS_DIR", raising=False)
    monkeypatch.delenv("CFNL_CITYFLOW_NL", raising=False)
    with pytest.raises(PreflightError) as ei:
        pipeline.run("paper")
    err = ei.value
    text = str(err)
    # both text encoders, the four distinct backbone weights files, and the data root: one list
    assert _kinds(err).count("text_encoder") == 2 and _kinds(err).count("weights") == 4
    assert "data" in _kinds(err) and "CFNL_CITYFLOW_NL" in text
    assert "roberta-large" in text and "roberta-base" in text and "tf_efficientnet_b3.aa_in1k" in text
    # each missing item names every configuration that needs it
    enc = next(n for n in err.needs if "roberta-large" in n.what)
    assert "motion_effb3_NOCLS_nlpaug_320" in enc.what and "motion_SE_NOCLS_nonlpaug_288" in enc.what
    assert not (tmp_path / "artifacts").exists(), "nothing may be written before the pre-flight passes"


def _real_root(tmp_path: Path, n_train: int, with_video: bool = True) -> Path:
    root = tmp_path / "cityflow"
    cam = root / "train" / "S01" / "c001"
    cam.mkdir(parents=True)
    if with_video:
        (cam / "vdo.avi").write_bytes(b"\0" * 1000)
    track = {"frames": ["./train/S01/c001/img1/000001.jpg"], "boxes": [[0, 0, 10, 10]], "nl": ["a red car"]}
    (root / "train-tracks.json").write_text(json.dumps({f"t{i}": track for i in range(n_train)}))
    other = {"frames": ["./validation/S02/c006/img1/000001.jpg"], "boxes": [[0, 0, 10, 10]]}
    (root / "test-tracks.json").write_text(json.dumps({"q": other}))
    return root


def test_real_data_root_files_cameras_and_split(tmp_path: Path) -> None:
    root = _real_root(tmp_path, n_train=3)
    needs, counts = preflight.check_data(root, n_val=5)
    lines = [n.line() for n in needs]
    assert any("test-queries.json: not found" in s for s in lines)
    assert any("3 training tracks" in s and "n_val=5" in s for s in lines)
    missing_cam = [s for s in lines if "validation/S02/c006/vdo.avi" in s]
    assert missing_cam and "track q" in missing_cam[0]
    assert counts["tracks"] == 4 and counts["cameras"] == 2 and counts["video_bytes_to_extract"] == 1000

    (root / "test-queries.json").write_text("{not json")
    needs, _ = preflight.check_data(root, n_val=2)
    assert [n.kind for n in needs] == ["data", "data"]  # unreadable queries, missing camera; the split now fits
    assert "not a readable JSON object" in needs[0].what


def test_disk_shortage_names_the_file_system_and_what_it_would_hold(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CFNL_ARTIFACTS", str(tmp_path / "artifacts"))
    prof = pipeline.load_profile("default")
    paths = [pipeline.resolve_params_path(c) for c in prof.configs]
    est = preflight.estimate_bytes(prof, paths, {"data_root": str(tmp_path / "none")})
    assert set(est) == {"synthetic dataset", "motion maps", "crop caches"} and all(v > 0 for v in est.values())
    monkeypatch.setattr(shutil, "disk_usage", lambda p: _Usage(10**12, 10**12 - 10**6, 10**6))
    needs = preflight.check_disk(prof, tmp_path / "data", paths, {"data_root": str(tmp_path / "none")})
    assert needs and needs[0].kind == "disk" and "0.0 GB free" in needs[0].what and "crop caches" in needs[0].what


def test_tiny_profile_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CFNL_ARTIFACTS", str(tmp_path / "artifacts"))
    counts = pipeline.preflight_check(pipeline.load_profile("tiny"))
    assert "data_root" in counts


def test_cli_prints_the_list_and_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CFNL_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.delenv("CFNL_MODELS_DIR", raising=False)
    root = _real_root(tmp_path, n_train=3)
    monkeypatch.setenv("CFNL_CITYFLOW_NL", str(root))
    assert pipeline.main(["--profile", "paper", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "pre-flight found" in err and "[split]" in err and "[text_encoder]" in err and "[weights]" in err
    # --no-preflight skips it (the plan itself still runs: dry run of a real layout)
    assert pipeline.main(["--profile", "paper", "--dry-run", "--no-preflight"]) == 0
