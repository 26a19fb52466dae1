"""Scope globs with ``**`` and the check of a file argument."""

from __future__ import annotations

import pytest

from core.errors import InputValidationError
from mcp_server.globs import first_match, glob_matches, normalize_file


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("src/**/*.py", "src/a.py", True),
        ("src/**/*.py", "src/x/y/a.py", True),
        ("src/**/*.py", "src/a.txt", False),
        ("src/**/*.py", "lib/src/a.py", False),
        ("src/**", "src/a/b/c.txt", True),
        ("src/", "src/a.txt", True),
        ("src/**", "src", False),
        ("**", "any/where/file", True),
        ("**/test_*.py", "test_a.py", True),
        ("**/test_*.py", "tests/unit/test_a.py", True),
        ("*.md", "README.md", True),
        ("*.md", "docs/README.md", False),
        ("docs/*.md", "docs/a.md", True),
        ("docs/*.md", "docs/sub/a.md", False),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("file?.txt", "file1.txt", True),
        ("file?.txt", "file10.txt", False),
        ("file[0-9].txt", "file7.txt", True),
        ("file[!0-9].txt", "file7.txt", False),
        ("file[!0-9].txt", "fileA.txt", True),
        ("[ab]/x", "a/x", True),
        ("weird[name", "weird[name", True),
        ("a.b+c(d)", "a.b+c(d)", True),
        ("a.b", "axb", False),
        ("./src/*.py", "src/a.py", True),
        ("src/*", "src/a/b", False),
        ("src/*.py", "src/.hidden.py", True),
    ],
)
def test_glob_matches(pattern: str, path: str, expected: bool) -> None:
    assert glob_matches(pattern, path) is expected


def test_first_match_names_the_glob() -> None:
    assert first_match(["docs/*.md", "src/**"], "src/a/b.py") == "src/**"
    assert first_match(["docs/*.md"], "src/a.py") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("src/a.py", "src/a.py"), ("./src//a.py", "src/a.py"), ("src\\win\\a.py", "src/win/a.py")],
)
def test_normalize_file(value: str, expected: str) -> None:
    assert normalize_file(value) == expected


@pytest.mark.parametrize(
    "value", ["", "  ", "/etc/passwd", "C:/x.py", "../x", "a/../../x", "a\nb", "x" * 2000, "."]
)
def test_bad_files_are_refused(value: str) -> None:
    with pytest.raises(InputValidationError):
        normalize_file(value)
