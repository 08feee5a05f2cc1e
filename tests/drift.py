"""Tree comparison for the drift checks: committed generated files vs. a fresh generation.

Generated artefacts (gRPC stubs from proto/, CRD manifests from kvd/api) are committed so that
they can be read and reviewed; a test regenerates them into a temporary directory and compares
the two trees with `diff_trees`, so CI fails the moment someone forgets to regenerate.
"""

from __future__ import annotations

from pathlib import Path

# Python's bytecode caches appear next to any imported module; they are never generated output.
IGNORED_DIR_NAMES = frozenset({"__pycache__"})
IGNORED_SUFFIXES = (".pyc",)


def diff_trees(expected: Path, actual: Path) -> list[str]:
    """List how `actual` differs from `expected`, one line per file, sorted by path.

    Compares the set of files and their bytes. Each line is a path relative to the tree roots
    followed by `: only in expected`, `: only in actual` or `: contents differ`. An empty list
    means the trees are identical; a missing root counts as an empty tree.
    """
    expected_files = _files(expected)
    actual_files = _files(actual)
    differences = []
    for relative in sorted(expected_files | actual_files):
        if relative not in actual_files:
            differences.append(f"{relative}: only in expected")
        elif relative not in expected_files:
            differences.append(f"{relative}: only in actual")
        elif (expected / relative).read_bytes() != (actual / relative).read_bytes():
            differences.append(f"{relative}: contents differ")
    return differences


def _files(root: Path) -> set[str]:
    if not root.is_dir():
        return set()
    return {
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.is_file()
        and not IGNORED_DIR_NAMES.intersection(path.relative_to(root).parts)
        and not path.name.endswith(IGNORED_SUFFIXES)
    }
