"""The library's shape: no import cycles, and no upward imports between its floors.

Floors, lowest first (docs/architecture.md): the shared ground floor; the data stages 00-03; the model families;
training and embedding (04, 05); the ensemble (06); the runner and the command-line aliases on top. A module may
import its own floor or lower ones, never a higher one. Every import counts, also one inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

from lib.paths import ROOT

LIB = ROOT / "lib"

FLOORS: list[tuple[str, set[str]]] = [
    ("ground", {"lib", "lib.errors", "lib.cli", "lib.paths", "lib.io", "lib.config", "lib.notebook", "lib.metrics",
                "lib.cityflow", "lib.crops", "lib.distributed", "lib.frame_io", "lib.prep", "lib.embeddings",
                "lib.thumbnails", "lib.progress"}),
    ("stages 00-03", {"lib.synthetic", "lib.data", "lib.frames", "lib.motion", "lib.text"}),
    ("families", {"lib.families"}),
    ("train and embed", {"lib.train", "lib.embed"}),
    ("ensemble", {"lib.ensemble"}),
    ("runner and aliases", {"lib.pipeline", "lib.preflight", "lib.bench", "lib.release", "lib.authors_part_two"}),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def lib_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(LIB.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The lib modules that ``path`` imports (``from lib.x import y`` counts ``lib.x.y`` when that is a module)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = [f"{node.module}.{a.name}" for a in node.names]
            names = [s for s in subs if s in known]  # ``from pkg import module`` imports the module
            if len(names) < len(subs):
                names.append(node.module)  # ``from module import name``
        out.update(n for n in names if n in known)
    return out


def import_graph() -> dict[str, set[str]]:
    mods = lib_modules()
    known = set(mods)
    # a submodule may name its own package (Python has run the package's __init__ first anyway)
    return {m: {d for d in imports_of(p, known) if d != m and not m.startswith(d + ".")} for m, p in mods.items()}


def floor_of(module: str) -> int:
    best, level = -1, -1
    for i, (_, prefixes) in enumerate(FLOORS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, level = len(p), i
    assert level >= 0, f"{module}: on no floor; add it to FLOORS in {__file__}"
    return level


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state and (c := visit(d)):
                return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (c := visit(m)):
            return c
    return None


def test_find_cycle_detects_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_lib() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_upward_imports() -> None:
    upward = []
    for m, deps in import_graph().items():
        for d in sorted(deps):
            if floor_of(d) > floor_of(m):
                upward.append(f"{m} ({FLOORS[floor_of(m)][0]}) imports {d} ({FLOORS[floor_of(d)][0]})")
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_every_module_is_on_a_floor() -> None:
    for m in lib_modules():
        floor_of(m)


def test_families_are_registered_statically() -> None:
    """No import strings for families: importing lib.families registers every family package under it."""
    import lib.families as F

    packages = sorted(p.parent.name for p in (LIB / "families").glob("*/family.py"))
    assert F.family_names() == packages
    for name in packages:
        fam = F.get_family(name)
        assert set(fam.sections) == {"model", "data", "train", "embed"} and fam.scoring_rule in ("mean_dot", "cosine")
    src = "\n".join(p.read_text(encoding="utf-8") for p in LIB.rglob("*.py"))
    assert "importlib.import_module(\"lib.family" not in src and "f\"lib.family_" not in src
