"""The seams hold: SQLite stays inside its backend, and the library never reaches the service."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICE = ROOT / "service"
LIBRARY = ROOT / "python" / "palette_native"
SQLITE_BACKEND = SERVICE / "sqlite"


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports (absolute names; relative ones resolved), and every string
    handed to ``importlib.import_module`` / ``__import__``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = ".".join(path.relative_to(ROOT / ("python" if LIBRARY in path.parents else "")).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.add(".".join([*base, *([node.module] if node.module else [])]))
            elif node.module:
                found.add(node.module)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if name in {"import_module", "__import__"} and isinstance(node.args[0].value, str):
                found.add(node.args[0].value)
    return found


def top(name: str) -> str:
    return name.split(".")[0]


SERVICE_FILES = sorted(SERVICE.rglob("*.py"))
LIBRARY_FILES = sorted(LIBRARY.rglob("*.py"))


def test_the_scan_sees_what_it_should() -> None:
    """The checks below would pass on an empty tree: make sure they read the real one."""
    assert "sqlite3" in imported_modules(SQLITE_BACKEND / "database.py")
    assert "service.sqlite.database" in imported_modules(SQLITE_BACKEND / "jobs.py")
    assert "service.sqlite.jobs" in imported_modules(SERVICE / "backends.py")
    assert any("palette_native" in imported_modules(f) for f in SERVICE_FILES)
    assert len(LIBRARY_FILES) > 5


@pytest.mark.parametrize("path", SERVICE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_sqlite_is_imported_only_by_the_sqlite_backend(path: Path) -> None:
    if SQLITE_BACKEND in path.parents:
        return
    uses = {m for m in imported_modules(path) if top(m) == "sqlite3"}
    assert not uses, f"{path.relative_to(ROOT)} imports {uses}: go through jobs/interfaces.py"


@pytest.mark.parametrize("path", SERVICE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_only_the_composition_root_opens_the_sqlite_backend(path: Path) -> None:
    if SQLITE_BACKEND in path.parents or path == SERVICE / "backends.py":
        return
    uses = {m for m in imported_modules(path) if m.startswith("service.sqlite")}
    assert not uses, f"{path.relative_to(ROOT)} imports {uses}: take the Protocol instead"


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_library_never_imports_the_service(path: Path) -> None:
    uses = {m for m in imported_modules(path) if top(m) == "service"}
    assert not uses, f"{path.relative_to(ROOT)} imports {uses}"
