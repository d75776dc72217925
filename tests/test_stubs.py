"""Types: the native module's stubs say what the binary really exports (mypy's stubtest), and
the Python packages type-check under mypy --strict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_core_stubs_match_the_binary() -> None:
    allowlist = Path(__file__).with_name("stubtest_allowlist.txt")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "palette_native._core", "--allowlist", str(allowlist)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_library_and_the_service_type_check_strictly() -> None:
    """mypy --strict over both packages ([tool.mypy] in pyproject.toml). Mutation testing counts a
    mutant that breaks the types as caught (tools/mutation.py), so this check is part of the
    suite, not only of the development loop."""
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(root / ".mypy_cache")],
        capture_output=True, text=True, timeout=600, cwd=root,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
