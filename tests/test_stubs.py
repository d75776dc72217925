"""The native module's type stubs say what the binary really exports (mypy's stubtest)."""

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
