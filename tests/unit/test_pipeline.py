"""The papermill runner: validation before anything runs, skipping, --from, --force and failures.

It runs on small stand-in notebooks (one per step, declaring the parameters the runner passes) so that it tests
the runner itself, fast; the real notebooks are run by tests/notebooks.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import nbformat
import pytest

from lib import pipeline
from lib.config import ConfigError
from lib.families import base as families_base

PARAMS = {
    "00_data": "preset='tiny'\nseed=0\ndata_root=''\nreal_data=False\nreal_annotations=''\nmetrics_path=''",
    "01_frames": "data_root=''\nonly_referenced=False\nmetrics_path=''",
    "02_motion_maps": "data_root=''\nprep_dir=''\nvariant='published'\nmetrics_path=''",
    "03_text_augmentation": "data_root=''\nprep_dir=''\nn_val=100\nmetrics_path=''",
    "04_train": "config=''\noverrides={}\ndata_root=''\nprep_dir=''\nout_dir=''\nmax_steps=None\nmetrics_path=''",
    "05_embed": "config=''\noverrides={}\ncheckpoint=''\ndata_root=''\nprep_dir=''\nout_dir=''\nmetrics_path=''",
    "06_ensemble": "data_root=''\nprep_dir=''\nruns_dir=''\nconfigs=[]\nout_dir=''\nreport_dir=''\nmetrics_path=''",
}


@dataclasses.dataclass
class _S:
    steps: int = 1


class _PipelineTestFamily:
    """A stand-in family (only its configuration sections are used by the runner)."""

    name = "_pipeline_test"
    sections = {"model": _S, "data": _S, "train": _S, "embed": _S}
    scoring_rule = "mean_dot"



def _write_notebooks(folder: Path, fail_step: str | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for step, params in PARAMS.items():
        nb = nbformat.v4.new_notebook()
        cell = nbformat.v4.new_code_cell(params)
        cell.metadata["tags"] = ["parameters"]
        body = "raise ValueError('boom in ' + metrics_path)" if step == fail_step else (
            "from lib.notebook import record_metrics\n"
            f"record_metrics({{'step': '{step}'}}, metrics_path, notebook='{step}')")
        nb.cells = [cell, nbformat.v4.new_code_cell(body)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, folder / f"{step}.ipynb")


@pytest.fixture()
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setitem(families_base._FAMILIES, _PipelineTestFamily.name, _PipelineTestFamily())
    monkeypatch.setenv("CFNL_ARTIFACTS", str(tmp_path / "artifacts"))
    code = {"hash": "code-v1"}  # library code is an input too; pinned here so edits elsewhere don't interfere
    monkeypatch.setattr(pipeline, "_code_fingerprint", lambda: code["hash"])
    nbs = tmp_path / "notebooks"
    _write_notebooks(nbs)
    cfg = tmp_path / "cfg_a.yaml"
    cfg.write_text("name: cfg_a\nfamily: _pipeline_test\ntrain: {steps: 2}\n")
    prof = tmp_path / "prof.yaml"
    prof.write_text(f"dataset: {{preset: tiny, seed: 1}}\nconfigs: [{cfg}]\n"
                    "notebooks: {03_text_augmentation: {n_val: 5}}\n")
    return {"nbs": nbs, "cfg": cfg, "prof": prof, "art": tmp_path / "artifacts", "code": code}


def _statuses(record: dict) -> dict[str, str]:
    return {t["task"]: t["status"] for t in record["tasks"]}


def test_run_skip_from_and_force(setup: dict) -> None:
    run = lambda **kw: pipeline.run(str(setup["prof"]), notebooks_dir=setup["nbs"], **kw)  # noqa: E731
    first = run()
    assert set(_statuses(first).values()) == {"ran"} and len(first["tasks"]) == 7
    run_dir = setup["art"] / "runs" / "prof"
    metrics = json.loads((run_dir / "metrics" / "03_text_augmentation.json").read_text())
    assert metrics["metrics"] == {"step": "03_text_augmentation"} and metrics["git_commit"]
    params = json.loads((run_dir / "params" / "03_text_augmentation.json").read_text())
    assert params["params"]["n_val"] == 5 and "git_commit" in params
    assert (run_dir / "notebooks" / f"04_train__{setup['cfg']}.ipynb").exists() or any(
        (run_dir / "notebooks").glob("04_train__*.ipynb"))

    second = run()
    assert set(_statuses(second).values()) == {"skipped"}

    again = run(from_step="05_embed")
    st = _statuses(again)
    assert st["04_train__" + str(setup["cfg"])] == "skipped"
    assert st["05_embed__" + str(setup["cfg"])] == "ran" and st["06_ensemble"] == "ran"

    # Editing a configuration re-runs its training and everything downstream, nothing upstream.
    setup["cfg"].write_text("name: cfg_a\nfamily: _pipeline_test\ntrain: {steps: 3}\n")
    st = _statuses(run())
    assert st["03_text_augmentation"] == "skipped" and st["04_train__" + str(setup["cfg"])] == "ran"
    assert st["06_ensemble"] == "ran"

    assert set(_statuses(run(force=True)).values()) == {"ran"}

    setup["code"]["hash"] = "code-v2"  # a change in lib/ re-runs everything
    assert set(_statuses(run()).values()) == {"ran"}


def test_misspelt_config_key_fails_before_any_notebook(setup: dict) -> None:
    setup["cfg"].write_text("name: cfg_a\nfamily: _pipeline_test\ntrain: {stepz: 2}\n")
    with pytest.raises(ConfigError) as e:
        pipeline.run(str(setup["prof"]), notebooks_dir=setup["nbs"])
    assert "'stepz'" in str(e.value) and "allowed keys: steps" in str(e.value) and "train" in str(e.value)
    assert not (setup["art"] / "runs" / "prof" / "notebooks").exists()


def test_undeclared_notebook_parameter_fails_before_any_notebook(setup: dict) -> None:
    setup["prof"].write_text("dataset: {preset: tiny}\nconfigs: []\nnotebooks: {03_text_augmentation: {nval: 5}}\n")
    with pytest.raises(ConfigError) as e:
        pipeline.run(str(setup["prof"]), notebooks_dir=setup["nbs"])
    msg = str(e.value)
    assert "'nval'" in msg and "did you mean 'n_val'" in msg and "03_text_augmentation" in msg
    assert not (setup["art"] / "runs" / "prof" / "notebooks").exists()


def test_misspelt_profile_key(setup: dict) -> None:
    setup["prof"].write_text("dataset: {preset: tiny}\nconfig: []\n")
    with pytest.raises(ConfigError, match="'config'.*allowed keys: configs"):
        pipeline.run(str(setup["prof"]), notebooks_dir=setup["nbs"])


def test_failing_cell_stops_and_names_error_and_notebook(setup: dict) -> None:
    _write_notebooks(setup["nbs"], fail_step="02_motion_maps")
    with pytest.raises(pipeline.PipelineError) as e:
        pipeline.run(str(setup["prof"]), notebooks_dir=setup["nbs"])
    msg = str(e.value)
    assert "02_motion_maps failed" in msg and "ValueError" in msg and "boom in" in msg
    assert "executed notebook:" in msg and "02_motion_maps.ipynb" in msg
    rec = json.loads((setup["art"] / "runs" / "prof" / "pipeline.json").read_text())
    assert _statuses(rec) == {"00_data": "ran", "01_frames": "ran", "02_motion_maps": "failed"}


def test_cli_reports_config_errors(setup: dict, capsys: pytest.CaptureFixture[str]) -> None:
    setup["prof"].write_text("dataset: {preset: tiny}\nconfigs: []\nnotebooks: {04_train: {max_step: 1}}\n")
    rc = pipeline.main(["--profile", str(setup["prof"]), "--dry-run", "--notebooks", str(setup["nbs"])])
    assert rc == 2 and "'max_step'" in capsys.readouterr().err


def test_kernel_paths_reach_the_kernels_and_key_the_results(setup: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    with pipeline.kernel_environment("portable"):
        assert os.environ["ATEN_CPU_CAPABILITY"] == "avx2" and os.environ["MKL_CBWR"] == "AVX2"
        assert os.environ["OMP_NUM_THREADS"] == "2"
    assert "ATEN_CPU_CAPABILITY" not in os.environ
    run = lambda **kw: pipeline.run(str(setup["prof"]), notebooks_dir=setup["nbs"], **kw)  # noqa: E731
    first = run()
    assert first["kernels"] == "native"
    assert set(_statuses(run(kernels="portable")).values()) == {"ran"}  # other kernels: other numbers, re-run
    assert set(_statuses(run(kernels="portable")).values()) == {"skipped"}
    with pytest.raises(ConfigError, match="--kernels"):
        run(kernels="fast")


def _profile(tmp_path: Path, configs: list[str], overrides: dict | None = None, notebooks: dict | None = None
             ) -> pipeline.Profile:
    return pipeline.Profile(name="plan_test", path=tmp_path / "plan_test.yaml", dataset={"preset": "tiny", "seed": 0},
                            configs=configs, overrides=overrides or {}, notebooks=notebooks or {})


def test_plan_builds_the_motion_maps_each_configuration_reads(tmp_path: Path) -> None:
    part_one, part_two = "motion_SE_3CLS_nonlpaug_288_cpu", "b48_lr1_w20_clip_e120_dd_cpu"  # ramp maps; none
    tasks = pipeline.plan(_profile(tmp_path, [part_one, part_two]))
    motion = [t for t in tasks if t.step == "02_motion_maps"]
    assert [(t.key, t.label, t.params["variant"]) for t in motion] == [
        ("02_motion_maps__ramp", "02_motion_maps [ramp]", "ramp")]
    assert motion[0].params["metrics_path"].name == "02_motion_maps__ramp.json"
    # the Part One training waits for its maps; the Part Two one (no maps) for the first motion task, in run order
    assert {t.config: t.depends[0] for t in tasks if t.step == "04_train"} == {
        part_one: "02_motion_maps__ramp", part_two: "02_motion_maps__ramp"}
    # the published maps for the same model: only those are built
    tasks = pipeline.plan(_profile(tmp_path, [part_one], {"data": {"motion_variant": "published"}}))
    assert [(t.key, t.params["variant"]) for t in tasks if t.step == "02_motion_maps"] == [
        ("02_motion_maps", "published")]
    assert [t.depends[0] for t in tasks if t.step == "04_train"] == ["02_motion_maps"]
    # a variant asked for in the profile's notebooks section is built beside the ones the models read
    tasks = pipeline.plan(_profile(tmp_path, [part_one], notebooks={"02_motion_maps": {"variant": "published"}}))
    assert [t.key for t in tasks if t.step == "02_motion_maps"] == ["02_motion_maps", "02_motion_maps__ramp"]
    # no motion stream at all: the published maps, so the stage still runs
    tasks = pipeline.plan(_profile(tmp_path, [part_two]))
    assert [t.params["variant"] for t in tasks if t.step == "02_motion_maps"] == ["published"]
