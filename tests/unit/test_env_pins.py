"""requirements*.txt and environment.yml must carry the same exact pins."""

from __future__ import annotations

import re

import yaml

from lib.paths import ROOT


def _req_pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for name in ("requirements.txt", "requirements-test.txt"):
        for line in (ROOT / name).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
            assert m, f"{name}: '{line}' is not an exact '==' pin"
            pins[m.group(1).lower()] = m.group(2)
    return pins


def _conda_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pins: dict[str, str] = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict) and "pip" in dep:
            for line in dep["pip"]:
                name, version = line.split("==")
                pins[name.lower()] = version
    return pins


def test_requirements_and_environment_agree() -> None:
    req, conda = _req_pins(), _conda_pins()
    assert req, "no pins found in requirements files"
    assert req == conda, {"only in requirements": sorted(set(req) - set(conda)),
                          "only in environment.yml": sorted(set(conda) - set(req)),
                          "different": sorted(k for k in set(req) & set(conda) if req[k] != conda[k])}


def test_environment_python_is_311() -> None:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
