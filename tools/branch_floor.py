"""Branch coverage of the library and the service from the last test run, and its floor.

coverage's own ``fail_under`` judges statements and branches together; the team's bar is on
branches alone, so this reads the combined data file ([tool.coverage.run] data_file) and
fails when branch coverage is under ``[tool.palette.coverage] branch_floor`` in pyproject.toml.
Run it from the repository root after the tests:

    python tools/branch_floor.py        # prints the table; exit status 1 under the floor
"""

from __future__ import annotations

import json
import sys
import tempfile
import tomllib
from pathlib import Path

import coverage


def main() -> int:
    config = tomllib.loads(Path("pyproject.toml").read_text(encoding="utf-8"))
    floor = float(config["tool"]["palette"]["coverage"]["branch_floor"])
    cov = coverage.Coverage(config_file="pyproject.toml")
    cov.load()
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "coverage.json"
        cov.json_report(outfile=str(report))
        files = json.loads(report.read_text(encoding="utf-8"))["files"]
    totals: dict[str, list[int]] = {"library": [0, 0], "service": [0, 0]}
    for path, entry in files.items():
        counted = totals["library" if "palette_native" in path else "service"]
        counted[0] += entry["summary"]["covered_branches"]
        counted[1] += entry["summary"]["num_branches"]
    covered = sum(c for c, _ in totals.values())
    branches = sum(n for _, n in totals.values())
    print("branch coverage (server and worker subprocesses included):")
    for package, (c, n) in totals.items():
        print(f"  {package:8} {c:5d} / {n:5d}  {100 * c / max(n, 1):5.1f} %")
    share = 100 * covered / max(branches, 1)
    print(f"  {'total':8} {covered:5d} / {branches:5d}  {share:5.1f} %  (floor {floor:g} %)")
    if share < floor:
        print(f"branch coverage {share:.1f} % is under the floor of {floor:g} %", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
