"""Shared test settings: offline, headless, and small thread counts on the 2-core machines."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory):
    """The tiny synthetic preset (seed 0), generated once per test session into a temporary folder.

    Tests that modify a dataset (frame extraction, ...) copy it first."""
    synthetic = pytest.importorskip("lib.synthetic")
    if not hasattr(synthetic, "generate"):
        pytest.skip("lib.synthetic.generate is not available yet")
    out = tmp_path_factory.mktemp("synthetic") / "tiny"
    synthetic.generate(preset="tiny", seed=0, out=out)
    return out
