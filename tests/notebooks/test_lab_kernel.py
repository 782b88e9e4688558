"""A kernel started the way `make lab` starts one reaches an interactive-capable matplotlib backend.

`make lab` runs JupyterLab with the Makefile's exported environment; JupyterLab starts the `cfnl` kernel with that
environment, so a non-interactive MPLBACKEND exported there (it once was: `export MPLBACKEND := Agg`) leaves every
notebook without figures. The test rebuilds that environment (this process's, without the Agg that pytest sets for
itself, plus the Makefile's exports) and asks a fresh `cfnl` kernel which backend matplotlib picked."""

from __future__ import annotations

import os
import re

import pytest

from lib.paths import NOTEBOOKS, ROOT

pytestmark = pytest.mark.notebooks

MAKEFILE = ROOT / "Makefile"


def makefile_exports() -> dict[str, str]:
    """``export NAME := VALUE`` (or ``=``) lines of the Makefile: what every recipe, `make lab` included, gets."""
    out = {}
    for line in MAKEFILE.read_text().splitlines():
        m = re.match(r"export\s+(\w+)\s*[:?]?=\s*(.*?)\s*$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def lab_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # pytest's own Agg (tests/conftest.py)
    env.update(makefile_exports())
    return env


def test_make_lab_exports_no_backend_and_opens_at_the_root() -> None:
    assert "MPLBACKEND" not in makefile_exports(), "the Makefile must not force a matplotlib backend on kernels"
    recipe = MAKEFILE.read_text().split("\nlab:", 1)[1].split("\n\n", 1)[0]
    assert "MPLBACKEND" not in recipe
    assert "--ServerApp.root_dir" in recipe and "--LabApp.default_url=/lab/tree/notebooks" in recipe


def test_kernel_started_like_make_lab_gets_an_interactive_backend() -> None:
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("cfnl")
    except NoSuchKernel:
        pytest.skip("kernel spec 'cfnl' is not installed (make venv installs it)")
    km = KernelManager(kernel_name="cfnl", transport_encryption="auto")  # as `make lab` configures its kernels
    km.start_kernel(env=lab_environment(), cwd=str(NOTEBOOKS))
    kc = km.client()
    lines: list[str] = []
    try:
        kc.start_channels()
        kc.wait_for_ready(timeout=120)

        def hook(msg: dict) -> None:
            if msg["msg_type"] == "stream":
                lines.extend(msg["content"]["text"].splitlines())

        code = ("import matplotlib, matplotlib.rcsetup as r\n"
                "b = matplotlib.get_backend()\n"
                "print(b)\n"
                "print('inline' in b.lower() or b in r.interactive_bk)")
        reply = kc.execute_interactive(code, output_hook=hook, timeout=120)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert reply["content"]["status"] == "ok", reply["content"]
    assert lines[-1] == "True", f"a `make lab` kernel gets matplotlib backend {lines[0]!r}: no figures would show"
