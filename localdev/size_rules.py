"""The size rules of `shared/` (DESIGN.md, Layers), checked by `make lint`.

A module holds at most 300 lines, pure data tables aside (`DATA_TABLES`); a function or method
at most 60, docstring included. Prints each breach and exits non-zero if any.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULE_LINES = 300
FUNCTION_LINES = 60
# Tables of data, not logic: their length is the length of what they list.
DATA_TABLES = {"shared/core/directory_roles.py"}


def breaches(root: Path = ROOT) -> list[str]:
    found = []
    for path in sorted((root / "shared").rglob("*.py")):
        name = path.relative_to(root).as_posix()
        source = path.read_text(encoding="utf-8")
        lines = len(source.splitlines())
        if lines > MODULE_LINES and name not in DATA_TABLES:
            found.append(f"{name}: {lines} lines (at most {MODULE_LINES})")
        for node in ast.walk(ast.parse(source, name)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                length = (node.end_lineno or node.lineno) - start + 1
                if length > FUNCTION_LINES:
                    found.append(
                        f"{name}:{node.lineno}: {node.name} is {length} lines "
                        f"(at most {FUNCTION_LINES})"
                    )
    return found


def main() -> int:
    found = breaches()
    for line in found:
        print(line)
    if found:
        print(f"size rules: {len(found)} breach(es)", file=sys.stderr)
        return 1
    print("size rules: every module and function of shared/ within bounds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
