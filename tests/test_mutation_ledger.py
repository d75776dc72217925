"""tools/mutation.py: the ledger keeps results on a new machine while their function is unchanged;
the SQL-case rule for equivalent mutants."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tools import mutation

SOURCE = "service/conditional.py"


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of one mutated module, with the project's mutmut settings, as the root."""
    (tmp_path / "service").mkdir()
    shutil.copy(mutation.ROOT / SOURCE, tmp_path / SOURCE)
    shutil.copy(mutation.ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    monkeypatch.setattr(mutation, "ROOT", tmp_path)
    monkeypatch.setattr(mutation, "LEDGER", tmp_path / "ledger.json")
    monkeypatch.setattr(mutation, "_config", lambda: {"only_mutate": [SOURCE]})
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _names() -> list[str]:
    return sorted(mutation._exit_codes())


def test_results_come_back_from_the_ledger_on_a_machine_without_mutants(tree: Path) -> None:
    names = _names()
    assert len(names) > 20 and all(n.startswith("service.conditional.") for n in names)
    assert set(mutation._exit_codes().values()) == {None}  # nothing checked yet
    killed, survived = names[0], names[-1]
    mutation._save_ledger({killed: 1, survived: 0})

    codes = mutation._exit_codes()
    assert codes[killed] == 1 and codes[survived] == 0
    assert sum(c is not None for c in codes.values()) == 2
    assert mutation._results()[killed] == "killed"
    assert mutation._results()[survived] == "survived"
    # Saving again keeps them (a report on a machine that ran nothing loses nothing).
    mutation._save_ledger(codes)
    assert mutation._exit_codes() == codes


def test_a_result_is_dropped_when_its_function_changes(tree: Path) -> None:
    names = _names()
    mutation._save_ledger(dict.fromkeys(names, 1))
    function, _ = mutation._mutant_function(names[0])
    source = tree / SOURCE
    text = source.read_text(encoding="utf-8")
    header = f"def {function.removeprefix('x_')}("
    assert header in text, "the first mutant belongs to a module-level function"
    body_start = text.index(":\n", text.index(header)) + 2
    source.write_text(text[:body_start] + "    _unused = 0\n" + text[body_start:], "utf-8")

    codes = mutation._exit_codes()
    changed = [n for n in codes if mutation._mutant_function(n)[0] == function]
    assert changed and all(codes[n] is None for n in changed)
    others = [n for n in codes if mutation._mutant_function(n)[0] != function]
    assert others and all(codes[n] == 1 for n in others)


def test_seeding_hands_mutmut_the_ledger_results(tree: Path) -> None:
    names = _names()
    mutation._save_ledger({names[0]: 1, names[1]: 36})
    mutation._seed_from_ledger()
    meta = json.loads((tree / "mutants" / f"{SOURCE}.meta").read_text(encoding="utf-8"))
    assert meta["exit_code_by_key"] == {names[0]: 1, names[1]: 36}
    function, _ = mutation._mutant_function(names[0])
    assert meta["hash_by_function_name"][function]
    # This machine's own results win over the ledger's; the ledger fills only what is missing.
    meta["exit_code_by_key"][names[0]] = 0
    (tree / "mutants" / f"{SOURCE}.meta").write_text(json.dumps(meta), encoding="utf-8")
    mutation._seed_from_ledger()
    assert mutation._exit_codes()[names[0]] == 0
    assert mutation._exit_codes()[names[1]] == 36


def _diff(before: str, after: str) -> str:
    return f"--- a.py\n+++ a.py\n@@ -1,3 +1,3 @@\n def f():\n-{before}\n+{after}\n     pass"


@pytest.mark.parametrize(
    ("before", "after", "same"),
    [
        ('    tx.execute("SELECT id FROM jobs WHERE id = ?", (i,))',
         '    tx.execute("select id from jobs where id = ?", (i,))', True),
        ('    "AND status = \'pending\' AND tries = 0"',
         '    "and status = \'pending\' and tries = 0"', True),
        ('    "lease_until = NULL, owner = NULL "', '    "LEASE_UNTIL = NULL, OWNER = NULL "', True),
        # a quoted SQL literal is compared as written
        ('    "AND status = \'pending\'"', '    "AND STATUS = \'PENDING\'"', False),
        # a Python value, not SQL
        ('    status = "pending"', '    status = "PENDING"', False),
        ('    tx.execute("SELECT 1 FROM t WHERE s = ?", ("pending",))',
         '    tx.execute("SELECT 1 FROM t WHERE s = ?", ("PENDING",))', False),
        # more than case
        ('    "SELECT id FROM jobs"', '    "XXSELECT id FROM jobsXX"', False),
    ],
)
def test_sql_case_only(before: str, after: str, same: bool) -> None:
    assert mutation.sql_case_only(_diff(before, after)) is same


def test_sql_case_only_needs_one_changed_line() -> None:
    two = _diff('    "SELECT a FROM t"', '    "select a from t"') + '\n-    "WHERE x"\n+    "where x"'
    assert mutation.sql_case_only(two) is False
