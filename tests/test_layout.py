"""The shape of the product, kept: short functions in every package, imports that only point down the floors
(data < keypoints < permakey, transporter < rl < training < experiments; bench/ and tools/ on top of them all, imported
by none), no imports between the sibling model packages, no experiment main importing another main, work folders
named in one place."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 60
FLOORS = {
    "data": 0,
    "keypoints": 1,
    "permakey": 2,
    "transporter": 2,
    "rl": 3,
    "training": 4,
    "experiments": 5,
    "bench": 6,
    "tools": 6,
}
"""Each package's floor: a package imports only from lower floors and its own (permakey and transporter, side by
side, not from each other); bench/ and tools/ may import any package and none imports them."""


def _functions(folder: str):
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield path.relative_to(ROOT), node


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # from experiments import <module>
    return names


def test_no_function_in_the_product_is_over_60_lines():
    long = [
        f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for folder in FLOORS
        for path, node in _functions(folder)
        if node.end_lineno is not None and node.end_lineno - node.lineno + 1 > LIMIT
    ]
    assert not long, "split these functions: " + ", ".join(long)


def test_permakey_and_transporter_do_not_import_each_other():
    for package, other in (("permakey", "transporter"), ("transporter", "permakey")):
        for path in sorted((ROOT / package).rglob("*.py")):
            crossing = [name for name in _imports(path) if name == other or name.startswith(other + ".")]
            assert not crossing, f"{path.relative_to(ROOT)} imports {crossing}: share it through keypoints/"


def test_imports_point_only_down_the_floors():
    upward = []
    for package, floor in FLOORS.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            for name in _imports(path):
                top = name.split(".")[0]
                if top in FLOORS and top != package and (FLOORS[top] >= floor or FLOORS[top] == FLOORS["bench"]):
                    upward.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not upward, "imports against the floors (move the shared code down): " + ", ".join(upward)


def _is_main(path: Path) -> bool:
    """An experiment's command-line entry: `python -m experiments.<name>` runs it."""
    text = path.read_text()
    return 'if __name__ == "__main__":' in text or "@ex.automain" in text


def test_no_experiment_main_imports_another_main():
    mains = {f"experiments.{path.stem}" for path in (ROOT / "experiments").glob("*.py") if _is_main(path)}
    assert "experiments.train_agent" in mains and "experiments.generation" not in mains
    crossing = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / "experiments").glob("*.py"))
        for name in _imports(path)
        if name in mains and name != f"experiments.{path.stem}"
    ]
    assert not crossing, "a main imports another main (share the code through training/ or a shared module): " + (
        ", ".join(crossing)
    )


def test_work_folders_are_named_only_by_the_workspace():
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("training", "experiments")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path.relative_to(ROOT).as_posix() != "training/workspace.py"
        and any(p in path.read_text() for p in ('f"work/', 'join("work"', "'work/"))
    ]
    assert not offenders, f"work folder paths spelled outside training/workspace.py: {offenders}"
