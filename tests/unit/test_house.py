"""The house rules that keep the code readable (docs/ARCHITECTURE.md, "The layout").

No class longer than 300 lines and no function longer than 100: past that, a unit does
more than one job. And every module appears in ARCHITECTURE.md's layout, so the folder
listing a newcomer reads and the map they are given never disagree.
"""

from __future__ import annotations

import ast
import re

from tests.helpers import ROOT

PACKAGE = ROOT / "execd"
MAX_CLASS_LINES = 300
MAX_FUNCTION_LINES = 100


def _modules() -> list[str]:
    return sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                  if p.name not in ("__init__.py", "__main__.py"))


def test_no_class_over_300_lines_and_no_function_over_100() -> None:
    """A class or function past its size never lands: it is doing two jobs."""
    too_long = []
    for module in _modules():
        tree = ast.parse((PACKAGE / module).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                lines = node.end_lineno - node.lineno + 1
                limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
                if lines > limit:
                    too_long.append(f"{module}:{node.lineno} {node.name}: {lines} lines")
    assert too_long == []


def test_every_module_is_on_the_architecture_map() -> None:
    """A module missing from docs/ARCHITECTURE.md's layout (or a name there with no
    module) never lands: the map must be the house as built."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    layout = text.split("## The layout", 1)[1].split("\n## ", 1)[0]
    drawn = layout.split("```", 2)[1]
    mapped: set[str] = set()
    folder: list[str] = []
    for line in drawn.splitlines():
        match = re.match(r"^( *)([a-z_/]+(?:\.py)?)\s", line + " ")
        if not match or match.group(2) == "execd/":
            continue
        depth = len(match.group(1)) // 2 - 1
        name = match.group(2)
        del folder[depth:]
        if name.endswith("/"):
            folder.append(name)
        elif name.endswith(".py"):
            mapped.add("".join(folder) + name)
    assert sorted(mapped) == _modules()
