"""The shape issue 17 gave the top floor, kept: short functions in experiments/ and rl/, no imports between the
sibling model packages, work folders named in one place."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 60


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
    return names


def test_no_function_in_experiments_or_rl_is_over_60_lines():
    long = [
        f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for folder in ("experiments", "rl")
        for path, node in _functions(folder)
        if node.end_lineno is not None and node.end_lineno - node.lineno + 1 > LIMIT
    ]
    assert not long, "split these functions: " + ", ".join(long)


def test_permakey_and_transporter_do_not_import_each_other():
    for package, other in (("permakey", "transporter"), ("transporter", "permakey")):
        for path in sorted((ROOT / package).rglob("*.py")):
            crossing = [name for name in _imports(path) if name == other or name.startswith(other + ".")]
            assert not crossing, f"{path.relative_to(ROOT)} imports {crossing}: share it through keypoints/"


def test_work_folders_are_named_only_by_the_workspace():
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "experiments").rglob("*.py"))
        if path.name != "workspace.py" and any(p in path.read_text() for p in ('f"work/', 'join("work"', "'work/"))
    ]
    assert not offenders, f"work folder paths spelled outside experiments/workspace.py: {offenders}"
