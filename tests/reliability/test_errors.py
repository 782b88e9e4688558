"""One-line errors: a user error in any ``python -m lib.X`` prints one line naming the file / track / field and exits
2; ``--debug`` (or ``CFNL_DEBUG=1``) shows the traceback; programming errors keep their traceback. Training and
embedding check their data (the validator's per-track check) before the first step. Metrics say what they ignored."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lib.cli import run_main
from lib.paths import ROOT
from tests.helpers.track_dataset import make_mini_dataset, tiny_overrides

EFF = "params/motion_effb3_NOCLS_nlpaug_320.yaml"


def _cli(module: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    e = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    e.pop("CFNL_DEBUG", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=e, capture_output=True, text=True,
                          timeout=300)


def _one_line(capsys: pytest.CaptureFixture[str], rc: int, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


# --- the shared door ------------------------------------------------------------------------------------------
def test_subprocess_user_error_is_one_line_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    r = _cli("lib.metrics", str(missing), str(missing))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and str(missing) in r.stderr, r.stderr
    r = _cli("lib.metrics", str(missing), str(missing), "--debug")
    assert r.returncode != 0 and "Traceback" in r.stderr
    r = _cli("lib.metrics", str(missing), str(missing), env={"CFNL_DEBUG": "1"})
    assert "Traceback" in r.stderr


def test_programming_errors_keep_their_traceback() -> None:
    def main(argv: list[str] | None = None) -> int:
        raise TypeError("a bug")

    with pytest.raises(TypeError):
        run_main(main, [])


# --- metrics ---------------------------------------------------------------------------------------------------
@pytest.fixture()
def sub(tmp_path: Path) -> Path:
    (tmp_path / "gt.json").write_text(json.dumps({"q1": "a", "q2": "b"}))
    (tmp_path / "test-tracks.json").write_text(json.dumps({"a": {}, "b": {}, "c": {}}))
    return tmp_path


def test_metrics_malformed_and_missing_queries(sub: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lib.metrics import main

    (sub / "bad.json").write_text("{not json")
    _one_line(capsys, run_main(main, [str(sub / "gt.json"), str(sub / "bad.json")]), "bad.json", "invalid JSON")
    (sub / "res.json").write_text(json.dumps({"q1": ["a", "b"]}))
    _one_line(capsys, run_main(main, [str(sub / "gt.json"), str(sub / "res.json")]), "res.json", "q2", "--lenient")
    assert run_main(main, [str(sub / "gt.json"), str(sub / "res.json"), "--lenient"]) == 0
    out = capsys.readouterr()
    rec = json.loads(out.out.strip().splitlines()[-1])
    assert rec["mrr"] == pytest.approx((1 + 1 / 101) / 2) and rec["missing_queries"] == 1
    assert "rank 100" in out.err


def test_metrics_report_ignored_queries_and_unknown_tracks(sub: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lib.metrics import main

    (sub / "res.json").write_text(json.dumps({"q1": ["zz", "a"], "q2": ["b"], "q9": ["a"]}))
    assert run_main(main, [str(sub / "gt.json"), str(sub / "res.json")]) == 0
    out = capsys.readouterr()
    rec = json.loads(out.out.strip().splitlines()[-1])
    assert rec["extra_queries"] == 1 and rec["unknown_tracks"] == 1 and rec["n_queries"] == 2
    assert "q9" in out.err and "zz" in out.err
    _one_line(capsys, run_main(main, [str(sub / "gt.json"), str(sub / "res.json"), "--strict"]), "--strict", "q9",
              "zz")


# --- stages 01-03 ----------------------------------------------------------------------------------------------
def test_stage_commands_answer_bad_inputs_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lib.frames.extract import main as frames_main
    from lib.motion.maps import main as motion_main
    from lib.text.__main__ import main as text_main

    _one_line(capsys, run_main(frames_main, [str(tmp_path / "absent")]), "absent", "not found")
    data = tmp_path / "data"
    data.mkdir()
    (data / "train-tracks.json").write_text(json.dumps({"t1": {"frames": ["train/S01/c001/img1/000001.jpg"],
                                                               "boxes": []}}))
    (data / "test-tracks.json").write_text("{}")
    _one_line(capsys, run_main(motion_main, [str(data), str(tmp_path / "out")]), "train-tracks.json", "t1",
              "'boxes'")
    _one_line(capsys, run_main(text_main, ["augment", str(tmp_path / "absent.json"), str(tmp_path / "o.json")]),
              "absent.json")


# --- training and embedding check their data before the first step ---------------------------------------------
@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_mini_dataset(tmp_path_factory.mktemp("mini_err"), n_tracks=8, n_val=2)


def _broken(mini: tuple[Path, Path], tmp_path: Path, edit) -> tuple[Path, Path, str]:
    data = tmp_path / "data"
    shutil.copytree(mini[0], data)
    tracks = json.loads((data / "train-tracks.json").read_text())
    uid = sorted(tracks)[0]
    edit(tracks[uid])
    (data / "train-tracks.json").write_text(json.dumps(tracks))
    return data, mini[1], uid


@pytest.mark.parametrize("kind,edit,field", [
    ("negative box", lambda t: t["boxes"].__setitem__(1, [10, 10, -5, 8]), "boxes"),
    ("zero frames", lambda t: (t["frames"].clear(), t["boxes"].clear()), "frames"),
    ("lengths differ", lambda t: t["boxes"].pop(), "boxes"),
])
def test_train_refuses_bad_tracks_in_one_line(mini, tmp_path: Path, capsys, kind: str, edit, field: str) -> None:
    from lib.train.__main__ import main

    data, prep, uid = _broken(mini, tmp_path, edit)
    rc = run_main(main, [EFF, "--data-root", str(data), "--prep-dir", str(prep), "--out", str(tmp_path / "out"),
                         "--override", json.dumps(tiny_overrides()), "--no-progress", "--device", "cpu"])
    _one_line(capsys, rc, "train-tracks.json", uid, f"'{field}'")
    assert not (tmp_path / "out" / "state.pt").exists()


def test_train_bad_override_and_truncated_checkpoint(mini, tmp_path: Path, capsys) -> None:
    from lib.embed import main as embed_main
    from lib.train.__main__ import main as train_main

    _one_line(capsys, run_main(train_main, [EFF, "--override", "{oops"]), "--override", "invalid JSON")
    ck = tmp_path / "best.safetensors"
    ck.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\"")
    data, prep = mini
    _one_line(capsys, run_main(embed_main, [EFF, str(ck), "--data-root", str(data), "--prep-dir", str(prep),
                                            "--override", json.dumps(tiny_overrides()), "--splits", "val",
                                            "--device", "cpu", "--out", str(tmp_path / "emb")]),
              str(ck), "truncated")


def test_partly_outside_boxes_are_counted_and_entirely_outside_ones_refused(mini) -> None:
    from lib.cityflow import DatasetError, check_tracks

    data, _ = mini
    tracks = json.loads((data / "train-tracks.json").read_text())
    uid = sorted(tracks)[0]
    t = tracks[uid]
    t["boxes"][0] = [-10, 5, 30, 20]  # partly outside (96x64 frames)
    rec = check_tracks({uid: t}, data / "train-tracks.json", require_nl=True, data_root=data)
    assert rec["boxes_partly_outside"] == 1 and rec["tracks_with_boxes_partly_outside"] == 1
    t["boxes"][1] = [500, 5, 30, 20]  # entirely outside
    with pytest.raises(DatasetError) as e:
        check_tracks({uid: t}, data / "train-tracks.json", require_nl=True, data_root=data)
    assert "box_outside_frame" in e.value.one_line() and uid in e.value.one_line()
