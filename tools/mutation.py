"""Mutation testing of the code that guards users, with mutmut 3 (configured in pyproject.toml).

    python tools/mutation.py run                # every mutant of [tool.mutmut] only_mutate
    python tools/mutation.py run --sample       # the fixed sample (SAMPLE below), then its
                                                # score, failing under SAMPLE_FLOOR (.ci/run)
    python tools/mutation.py run 'service.conditional.*'   # mutants by name (mutmut globs)
    python tools/mutation.py run --unchecked ['service.uploads.*']  # only mutants with no
                                                # result yet, here or in the ledger
    python tools/mutation.py report             # writes benchmarks/results/mutation.md
    python tools/mutation.py sql-case           # lists surviving SQL-case-only mutants of the
                                                # SQLite modules as equivalent (see sql_case_only)
    python tools/mutation.py save               # this machine's results into the ledger now
                                                # (safe beside a running ``run``)
    python tools/mutation.py results            # mutmut's own listing
    python tools/mutation.py try NAME -- tests/x.py -k y   # one mutant (from the last
                                                # ``run``'s mutants/) against the work tree's
                                                # tests: "killed" when they fail (kept
                                                # as a result, like run's, for save/report)

Runs from the repository root; mutmut copies the sources to ``mutants/`` and runs the
in-process tests (pyproject's ``pytest_add_cli_args_test_selection``) against each mutant, only
the tests that reach the mutated function. Use ``nice -n 10`` on a shared machine.

Two adjustments make mutmut work with this project's editable install:

* the install redirects ``import service`` / ``import palette_native`` to the main work tree,
  so the mutated copies in ``mutants/`` would never be imported. The redirect is dropped for
  the pure-Python modules (the compiled ``palette_native._core`` still comes from the install);
* mutmut names mutants after their file path, and ``python/palette_native/archive.py`` is the
  module ``palette_native.archive``: the ``python.`` prefix is dropped, as mutmut does for
  ``src.``.

``report`` counts killed, survived, timed-out and untested mutants per module and subtracts
the mutants listed in ``tools/equivalent_mutants.txt`` (each with a one-line reason).

mutmut keeps its results in ``mutants/`` (not committed), so a new machine would start from
nothing. The ledger (``benchmarks/results/mutation-ledger.json``, committed) keeps every result
with the hash mutmut gives the function's source: every ``run`` and ``report`` adds what this
machine checked, and a result from the ledger counts only while its function's hash is the
same, so the full run can be finished module by module across machines. A result there can go
stale when tests change (a weakened test lets a listed "killed" mutant live); ``run`` with
names re-checks, and CI re-checks the sample on every run.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "benchmarks" / "results" / "mutation.md"
LEDGER = ROOT / "benchmarks" / "results" / "mutation-ledger.json"
EQUIVALENT = ROOT / "tools" / "equivalent_mutants.txt"
MUTATED_PACKAGES = ("service", "palette_native")

# The CI sample: a fixed set of mutants (the same ones every run), a few from each module, so
# a check sees within minutes whether the tests still catch breaks in each area. The full run is
# the documented command above. .ci/run runs the sample and fails when fewer than SAMPLE_FLOOR
# per cent of its mutants (less the listed equivalent ones) are killed.
SAMPLE = (
    "service.conditional.x_parse_range__mutmut_1*",
    "service.signed_urls.xǁUrlSignerǁverify__mutmut_2*",
    "service.egress.x_refusal_reason__mutmut_1*",
    "service.uploads.x_read_body__mutmut_1*",
    "service.webhooks.delivery.x_parse_retry_after__mutmut_*",
    "service.sqlite.webhook_outbox.xǁSqliteWebhookOutboxǁrecord_attempt__mutmut_3*",
    "service.sqlite.idempotency.xǁSqliteIdempotencyStoreǁidempotency_begin__mutmut_1*",
    "service.jobs.worker.xǁWorkerPoolǁ_stop__mutmut_*",
    "palette_native.archive.x__read_entry__mutmut_1*",
    "service.jobs.service.xǁJobServiceǁreplay__mutmut_1*",
    "service.sqlite.jobs.xǁSqliteJobStoreǁcancel__mutmut_1*",
    "service.sqlite.webhook_endpoints.xǁSqliteWebhookEndpointsǁupdate_endpoint__mutmut_1*",
)
SAMPLE_FLOOR = 90.0


def _native_module() -> Path | None:
    """The compiled core as installed (a regular install has no editable finder for it)."""
    for entry in map(Path, [p for p in sys.path if p]):
        found = sorted(entry.glob("palette_native/_core*.so")) if entry.is_dir() else []
        if found and "mutants" not in entry.parts:
            return found[0]
    return None


def _import_the_mutated_copies() -> None:
    native = _native_module()
    if native is not None:  # next to the mutated package copy, which has no build of its own
        target = ROOT / "mutants" / "python" / "palette_native" / native.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            shutil.copy2(native, target)
    for finder in sys.meta_path:
        for table in ("known_source_files", "submodule_search_locations"):
            known = getattr(finder, table, None)
            if isinstance(known, dict):
                for name in [n for n in known if n.split(".")[0] in MUTATED_PACKAGES]:
                    del known[name]
    for folder in ("mutants/python", "mutants"):
        # Made now: a folder missing when it is first searched is never searched again.
        (ROOT / folder).mkdir(parents=True, exist_ok=True)
        sys.path.insert(0, str(ROOT / folder))


def _name_modules_as_imported() -> None:
    from mutmut.utils import format_utils

    original = format_utils.get_mutant_name

    def get_mutant_name(relative_source_path: Path, mutant_method_name: str) -> str:
        name = original(relative_source_path, mutant_method_name)
        return name.removeprefix("python.")

    for module in [m for n, m in sys.modules.items() if n.startswith("mutmut")]:
        if getattr(module, "get_mutant_name", None) is original:
            module.get_mutant_name = get_mutant_name  # type: ignore[attr-defined]


def _config() -> dict[str, Any]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mutmut"]


def _refresh_unmutated_copies() -> None:
    """mutmut copies the source folders to ``mutants/`` once and never again, so a file it does
    not mutate (the Redis backend, a Lua script, settings ...) would stay as it was at the first
    run while the tests move on. Bring every such copy up to date before each run."""
    config = _config()
    mutated = {Path(p) for p in config["only_mutate"]}
    for folder in config["source_paths"]:
        for source in (ROOT / folder).rglob("*"):
            relative = source.relative_to(ROOT)
            copy = ROOT / "mutants" / relative
            if (
                not source.is_file()
                or relative in mutated
                or "__pycache__" in relative.parts
                or not copy.exists()  # mutmut itself copies what is new
            ):
                continue
            if copy.read_bytes() != source.read_bytes():
                shutil.copy2(source, copy)


def _mutmut(args: list[str], *, unchecked_only: bool = False) -> int:
    os.chdir(ROOT)
    _refresh_unmutated_copies()
    _import_the_mutated_copies()
    import mutmut.__main__ as entry

    _name_modules_as_imported()
    _type_errors_of_mutants_only()
    if args[:1] == ["run"]:
        _seed_from_ledger()
    if unchecked_only:
        _skip_checked(entry)
    try:
        entry.cli.main(args=args, prog_name="mutmut", standalone_mode=False)
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        if args[:1] == ["run"]:
            _save_ledger(_exit_codes())
    return 0


def _type_errors_of_mutants_only() -> None:
    """mypy also reports errors in mutmut's own dispatch wrappers (a wrapped ``TypeGuard``
    function no longer narrows its argument), which mutmut cannot pin on a mutant and stops on.
    Keep only the errors inside a mutant's function: those the mutation made."""
    import ast

    from mutmut.mutation import file_mutation

    original = file_mutation.run_type_checker

    def run_type_checker(command: list[str]) -> list[Any]:
        if command[:1] == ["mypy"]:  # this interpreter's mypy, whatever PATH holds
            command = [sys.executable, "-m", *command]
        errors = original(command)
        spans: dict[Path, list[tuple[int, int]]] = {}
        for path in {e.file_path for e in errors}:
            tree = ast.parse(Path(path).read_text(encoding="utf-8"))
            spans[path] = [
                (node.lineno, node.end_lineno or node.lineno)
                for node in ast.walk(tree)
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                and "__mutmut_" in node.name
                and not node.name.endswith("__mutmut_orig")
            ]
        kept = [e for e in errors if any(a <= e.line_number <= b for a, b in spans[e.file_path])]
        if len(kept) < len(errors):
            print(f"    {len(errors) - len(kept)} type error(s) outside mutants left aside")
        return kept

    file_mutation.run_type_checker = run_type_checker


def _skip_checked(entry: Any) -> None:
    """mutmut runs every mutant it is given by name again; keep only those with no result."""
    original = entry.collect_source_file_mutation_data

    def collect(*, mutant_names: Any) -> Any:
        mutants, by_path = original(mutant_names=mutant_names)
        return [m for m in mutants if m[2] is None], by_path

    entry.collect_source_file_mutation_data = collect


# -- the ledger ------------------------------------------------------------------------------

def _mutant_function(name: str) -> tuple[str, int]:
    """``service.egress.x_port__mutmut_7`` -> (``x_port``, 6): the function as mutmut hashes it
    and the mutant's index among that function's mutants."""
    head, _, number = name.rpartition("__mutmut_")
    return head.rpartition(".")[2], int(number) - 1


def _generated() -> dict[str, tuple[dict[str, str], list[str]]]:
    """Every mutated file -> (hash of each function, mutant names) for the sources as they are
    now: from mutmut's last run where its copy is up to date, else made as ``mutmut run``
    makes them (nothing is written)."""
    from mutmut.mutation.file_mutation import mutate_file_contents
    from mutmut.utils.format_utils import get_mutant_name

    os.chdir(ROOT)
    out = {}
    for path in _config()["only_mutate"]:
        meta, copy = _meta(path), ROOT / "mutants" / path
        if meta and copy.is_file() and copy.stat().st_mtime > (ROOT / path).stat().st_mtime:
            # mutmut's own copy is newer than the source (its test for "unmodified")
            out[path] = (meta["hash_by_function_name"], list(meta["exit_code_by_key"]))
            continue
        made = mutate_file_contents(path, (ROOT / path).read_text(encoding="utf-8"))
        names = [get_mutant_name(Path(path), n).removeprefix("python.") for n in made.mutant_names]
        out[path] = (dict(made.hash_by_function_name), names)
    return out


def _meta(path: str) -> dict[str, Any]:
    meta = ROOT / "mutants" / f"{path}.meta"
    for _ in range(10):  # a running mutmut rewrites the file after every mutant
        try:
            return json.loads(meta.read_text(encoding="utf-8")) if meta.is_file() else {}
        except json.JSONDecodeError:
            time.sleep(0.2)
    raise RuntimeError(f"{meta} stays unreadable")


def _load_ledger() -> dict[str, dict[str, dict[str, Any]]]:
    if not LEDGER.is_file():
        return {}
    return json.loads(LEDGER.read_text(encoding="utf-8"))["files"]


def _exit_codes() -> dict[str, int | None]:
    """Every mutant of the sources as they are now -> mutmut's exit code for it: from this
    machine's last run, else from the ledger; None where neither has a result for the function
    as it is now."""
    ledger = _load_ledger()
    out: dict[str, int | None] = {}
    for path, (hashes, names) in _generated().items():
        meta = _meta(path)
        here = meta.get("exit_code_by_key", {})
        here_hashes = meta.get("hash_by_function_name", {})
        kept = ledger.get(path, {})
        for name in names:
            func, index = _mutant_function(name)
            code = here.get(name) if here_hashes.get(func) == hashes.get(func) else None
            entry = kept.get(func)
            if code is None and entry is not None and entry["hash"] == hashes.get(func):
                codes = entry["exit_codes"]
                code = codes[index] if index < len(codes) else None
            out[name] = code
    return out


def _save_ledger(codes: dict[str, int | None]) -> None:
    """Write every known result, by file and function, with the function's hash."""
    generated = _generated()
    lines = ['{"mutmut": %s, "files": {' % json.dumps(_mutmut_version())]
    files = []
    for path, (hashes, names) in sorted(generated.items()):
        by_function: dict[str, list[int | None]] = defaultdict(list)
        for name in names:
            func, index = _mutant_function(name)
            column = by_function[func]
            column.extend([None] * (index + 1 - len(column)))
            column[index] = codes.get(name)
        entries = [
            f"  {json.dumps(func, ensure_ascii=False)}: "
            f'{{"hash": "{hashes[func]}", "exit_codes": {json.dumps(column)}}}'
            for func, column in sorted(by_function.items())
            if any(c is not None for c in column)
        ]
        if entries:
            files.append(f" {json.dumps(path)}: {{\n" + ",\n".join(entries) + "\n }")
    lines.append(",\n".join(files))
    lines.append("}}")
    LEDGER.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _seed_from_ledger() -> None:
    """Hand mutmut the ledger's results for functions whose hash it has (or will compute as)
    the same, so a plain ``run`` checks only the rest."""
    for path, functions in _load_ledger().items():
        meta_path = ROOT / "mutants" / f"{path}.meta"
        meta = _meta(path) or {
            "exit_code_by_key": {},
            "hash_by_function_name": {},
            "type_check_error_by_key": {},
            "durations_by_key": {},
            "estimated_durations_by_key": {},
        }
        hashes = meta["hash_by_function_name"]
        codes = meta["exit_code_by_key"]
        module = _module_name(path)
        for func, entry in functions.items():
            if hashes.setdefault(func, entry["hash"]) != entry["hash"]:
                continue
            for index, code in enumerate(entry["exit_codes"]):
                name = f"{module}.{func}__mutmut_{index + 1}"
                if code is not None and codes.get(name) is None:
                    codes[name] = code
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        meta_path.write_text(json.dumps(meta), encoding="utf-8")


def _module_name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".").removeprefix("python.")


# -- the report ------------------------------------------------------------------------------

def _equivalents() -> dict[str, str]:
    out: dict[str, str] = {}
    if EQUIVALENT.is_file():
        for line in EQUIVALENT.read_text(encoding="utf-8").splitlines():
            name, sep, reason = line.partition(" ")
            if name and not name.startswith("#") and sep:
                out[name] = reason.strip()
    return out


def _results() -> dict[str, str]:
    """mutant name -> status (in mutmut's own words), this machine's results and the ledger's."""
    from mutmut.stats import status_by_exit_code

    return {name: status_by_exit_code[code] for name, code in _exit_codes().items()}


def _module(name: str) -> str:
    head = name.split("__mutmut_")[0]
    parts = head.split(".")
    while parts and (parts[-1].startswith("x_") or parts[-1].startswith("xǁ")):
        parts.pop()
    return ".".join(parts)


def report(command: str) -> int:
    from mutmut.stats import status_by_exit_code

    codes = _exit_codes()
    _save_ledger(codes)
    results = {name: status_by_exit_code[code] for name, code in codes.items()}
    equivalent = _equivalents()
    unknown = sorted(set(equivalent) - set(results))
    # A listed mutant that the tests kill is not equivalent: its entry is stale (mutmut numbers
    # mutants by position, so an edit to a function renumbers them). It counts as killed.
    stale = sorted(n for n in equivalent if results.get(n) in ("killed", "timeout"))
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    for name, status in results.items():
        listed = name in equivalent and name not in stale
        by_module[_module(name)]["equivalent" if listed else status] += 1
    lines = [
        "# Mutation testing",
        "",
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- tool: mutmut {_mutmut_version()}; command: `{command}`",
        "- score = (killed + mypy) / (mutants - equivalent - not checked). \"mypy\": refused by",
        "  mypy --strict, which the suite runs (tests/test_stubs.py), before any test ran. \"tests",
        "  on typed\": killed / (the same less the mypy ones), the tests' score on the mutants that",
        "  pass the type check. A timeout counts as killed (the mutant hung the tests); a mutant no",
        "  test reaches counts against the score. \"other\": not checked or skipped; a module with",
        "  mutants there was checked in part, and its scores cover the mutants checked.",
        "- results carry over between machines in mutation-ledger.json (see tools/mutation.py).",
        "",
        "| module | mutants | killed | mypy | timeout | survived | no tests | equivalent | other "
        "| score | tests on typed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    total: Counter[str] = Counter()
    for module in sorted(by_module):
        c = by_module[module]
        total.update(c)
        lines.append(_row(module, c))
    lines.append(_row("**all**", total))
    unchecked = {m: _other(c) for m, c in by_module.items()}
    full = sorted(m for m, n in unchecked.items() if n == 0)
    part = sorted(
        f"{m} ({sum(by_module[m].values()) - n} of {sum(by_module[m].values())})"
        for m, n in unchecked.items()
        if n
    )
    lines += [
        "",
        f"Checked in full: {', '.join(full) or 'none'}.",
        f"Checked in part (mutants checked of all): {', '.join(part) or 'none'}.",
    ]
    survivors = sorted(
        n
        for n, s in results.items()
        if s in ("survived", "suspicious", "no tests") and n not in equivalent
    )
    lines += ["", f"## Surviving mutants ({len(survivors)})", ""]
    lines += [f"- `{n}`" for n in survivors] or ["none"]
    listed = {n: r for n, r in equivalent.items() if n not in stale}
    lines += ["", f"## Equivalent mutants ({len(listed)})", ""]
    lines += [f"- `{n}`: {r}" for n, r in sorted(listed.items())] or ["none"]
    if unknown:
        lines += ["", "Listed as equivalent but not in this run:", *[f"- `{n}`" for n in unknown]]
    if stale:
        lines += [
            "",
            "Listed as equivalent but killed (stale entries, counted as killed):",
            *[f"- `{n}`" for n in stale],
        ]
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines[: 15 + len(by_module)]))
    return 0


def _row(module: str, c: Counter[str]) -> str:
    by_mypy = c["caught by type check"]
    by_tests = c["killed"] + c["timeout"] + c["segfault"]
    counted = sum(c.values()) - c["equivalent"] - c["not checked"] - c["skipped"]
    score = f"{100.0 * (by_tests + by_mypy) / counted:.1f} %" if counted else "-"
    typed = counted - by_mypy
    tests_score = f"{100.0 * by_tests / typed:.1f} %" if typed else "-"
    return (
        f"| {module} | {sum(c.values())} | {c['killed']} | {by_mypy} "
        f"| {c['timeout'] + c['segfault']} | {c['survived'] + c['suspicious']} | {c['no tests']} "
        f"| {c['equivalent']} | {_other(c)} | {score} | {tests_score} |"
    )


def _other(c: Counter[str]) -> int:
    return sum(c.values()) - sum(c[k] for k in _COLUMNS)


_COLUMNS = (
    "killed",
    "caught by type check",
    "timeout",
    "segfault",
    "survived",
    "suspicious",
    "no tests",
    "equivalent",
)


def _mutmut_version() -> str:
    from importlib.metadata import version

    return version("mutmut")


def sample_score() -> int:
    """The sample's score from the last run; 1 (a failure) under ``SAMPLE_FLOOR``, or when a
    mutant of the sample was not run at all."""
    equivalent = _equivalents()
    chosen = {
        name: status
        for name, status in _results().items()
        if any(fnmatchcase(name, pattern) for pattern in SAMPLE) and name not in equivalent
    }
    killed = sorted(n for n, s in chosen.items() if s in _KILLED)
    missed = sorted(n for n, s in chosen.items() if s not in _KILLED)
    score = 100.0 * len(killed) / len(chosen) if chosen else 0.0
    print(f"mutation sample: {len(killed)} of {len(chosen)} killed ({score:.1f} %, "
          f"floor {SAMPLE_FLOOR:.0f} %); {len(SAMPLE)} patterns, equivalent ones left out")
    for name in missed:
        print(f"  not killed ({chosen[name]}): {name}")
    return 0 if chosen and score >= SAMPLE_FLOOR else 1


_KILLED = ("killed", "timeout", "segfault", "caught by type check")


SQL_CASE_REASON = (
    "SQLite keywords and names are case-insensitive and no quoted literal changed: the same "
    "statement."
)
_SQL_WORD = re.compile(
    r"\b(SELECT|UPDATE|INSERT|DELETE|WHERE|FROM|SET|AND|OR|NOT|IN|IS|NULL|JOIN|ON|AS|ORDER BY|"
    r"GROUP BY|LIMIT|VALUES|RETURNING|CASE|WHEN|THEN|ELSE|END|COUNT|COALESCE|MIN|MAX|SUM)\b"
)


def sql_case_only(diff: str) -> bool:
    """A diff that only changes the case of SQL outside its quoted literals (SQLite reads
    keywords and names in any case): one line out, one line in, differing only in case, inside
    one double-quoted string that holds an SQL keyword, with each '...' literal unchanged."""
    removed = [l[1:] for l in diff.splitlines() if l.startswith("-") and not l.startswith("---")]
    added = [l[1:] for l in diff.splitlines() if l.startswith("+") and not l.startswith("+++")]
    if len(removed) != 1 or len(added) != 1 or removed == added:
        return False
    before, after = removed[0], added[0]
    if len(before) != len(after) or before.lower() != after.lower():
        return False
    differ = [i for i, (b, a) in enumerate(zip(before, after)) if b != a]
    opening, closing = before.rfind('"', 0, differ[0]), before.find('"', differ[-1])
    if opening < 0 or closing < 0 or '"' in before[opening + 1 : closing]:
        return False
    literal, mutated = before[opening + 1 : closing], after[opening + 1 : closing]
    pieces = zip(literal.split("'"), mutated.split("'"))
    return _SQL_WORD.search(literal) is not None and all(
        b == a for i, (b, a) in enumerate(pieces) if i % 2
    )


def list_sql_case_equivalents() -> int:
    """Append to the equivalents list every surviving mutant of an SQLite module whose only
    change is the case of SQL (``sql_case_only``); prints what it added."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    os.chdir(ROOT)
    listed = _equivalents()
    added = []
    for name, status in sorted(_results().items()):
        if status not in ("survived", "suspicious") or name in listed:
            continue
        if ".sqlite." in name and sql_case_only(get_diff_for_mutant(name)):
            added.append(f"{name} {SQL_CASE_REASON}")
    if added:
        with EQUIVALENT.open("a", encoding="utf-8") as out:
            out.write("\n".join(added) + "\n")
    print("\n".join(added) or "no new SQL-case equivalents")
    return 0


def try_mutant(name: str, pytest_args: list[str]) -> int:
    """Run the given tests (the work tree's, so a test written since the last ``run`` counts)
    with one mutant switched on; 0 when they fail (the mutant is killed), 1 when they pass.
    Like mutmut, any failure counts as a kill: run the same tests without a mutant first."""
    import pytest
    from mutmut.mutation.trampoline import set_mutant_under_test

    if not (ROOT / "mutants").is_dir():
        sys.exit("no mutants/ here: `python tools/mutation.py run` makes it")
    _refresh_unmutated_copies()
    _import_the_mutated_copies()
    set_mutant_under_test(name)
    # Imported now, from mutants/: pytest puts the work tree first on sys.path when it loads
    # the tests, and a package already imported stays the one its submodules come from.
    for package in map(importlib.import_module, MUTATED_PACKAGES):
        assert "mutants" in Path(package.__file__ or "").parts, package
    code = pytest.main(["-p", "no:cacheprovider", "-q", "-x", *pytest_args])
    if code in (pytest.ExitCode.NO_TESTS_COLLECTED, pytest.ExitCode.USAGE_ERROR):
        sys.exit(f"pytest could not run those tests (exit {code})")
    print(f"{name}: {'survived' if code == 0 else 'killed'}")
    _record(name, 0 if code == 0 else 1)
    return 1 if code == 0 else 0


def _record(name: str, exit_code: int) -> None:
    """Keep a ``try`` outcome as mutmut keeps its own (the exit code in the file's .meta), so
    ``save`` and ``report`` count it; only while mutants/ holds the function as it is now."""
    for path, (hashes, names) in _generated().items():
        if name not in names:
            continue
        meta = _meta(path)
        func, _ = _mutant_function(name)
        if meta.get("hash_by_function_name", {}).get(func) != hashes.get(func):
            print(f"not recorded: mutants/{path} is older than the source (run first)")
            return
        meta.setdefault("exit_code_by_key", {})[name] = exit_code
        (ROOT / "mutants" / f"{path}.meta").write_text(json.dumps(meta), encoding="utf-8")
        return


def main(argv: list[str]) -> int:
    if argv[:1] == ["try"] and len(argv) >= 2:
        return try_mutant(argv[1], [a for a in argv[2:] if a != "--"])
    if argv[:1] == ["sql-case"]:
        return list_sql_case_equivalents()
    if argv[:1] == ["save"]:
        _save_ledger(_exit_codes())
        return 0
    if argv[:1] == ["report"]:
        return report(" ".join(["python tools/mutation.py", *(argv[1:] or ["run"])]))
    if argv[:2] == ["run", "--sample"]:
        return _mutmut(["run", *SAMPLE, *argv[2:]]) or sample_score()
    if argv[:2] == ["run", "--unchecked"]:
        rest, options, names = argv[2:], [], []
        while rest:
            arg = rest.pop(0)
            if arg == "--max-children":
                options += [arg, rest.pop(0)]
            else:
                (options if arg.startswith("-") else names).append(arg)
        return _mutmut(["run", *options, *(names or ["*"])], unchecked_only=True)
    return _mutmut(argv or ["run"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
