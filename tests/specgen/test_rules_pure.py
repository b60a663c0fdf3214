"""The rules read nothing themselves: during `validate --all` and archive's plan every file is opened
and every folder listed through the run's reader.files.Files, each file read and each folder listed
at most once per run; and every row of the rule tables is live (it reports on the parity fixtures).

See docs/validation.md (the rule tables) and docs/reading-openspec.md (reader.files).
"""

from __future__ import annotations

import builtins
import io
import os
import sys
from collections import Counter
from pathlib import Path

import pytest

from specgen.reader.files import Files
from specgen.rules import validate_change, validate_spec
from specgen.rules.archive import plan_archive
from specgen.rules.merge import ArchiveAbort
from specgen.rules.validate import report_json

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CHANGES = FIXTURES / "parity-validate" / "changes-rules"
SPECS = FIXTURES / "parity-validate" / "specs-rules"


def _specgen_caller() -> str:
    """Who made the patched call: "reader.files" when it came through a Files (the one way the
    rules may read), else the specgen module nearest on the stack ("?": none, the test's own)."""
    f = sys._getframe(2)
    nearest = "?"
    while f is not None:
        name = f.f_globals.get("__name__", "")
        if name == "specgen.reader.files":
            return "reader.files"
        if nearest == "?" and name.startswith("specgen."):
            nearest = name
        f = f.f_back
    return nearest


@pytest.fixture
def io_log(monkeypatch):
    """(caller module, what, path) of every open and folder listing while the test runs."""
    log: list[tuple[str, str, str]] = []
    real_open, real_scandir, real_listdir = builtins.open, os.scandir, os.listdir
    real_stat, real_lstat = os.stat, os.lstat

    def opened(file, *a, **k):
        if not isinstance(file, int):
            log.append((_specgen_caller(), "open", os.fspath(file)))
        return real_open(file, *a, **k)

    def scanned(path="."):
        log.append((_specgen_caller(), "scandir", os.fspath(path)))
        return real_scandir(path)

    def listed(path="."):
        log.append((_specgen_caller(), "listdir", os.fspath(path)))
        return real_listdir(path)

    def stat(path, *a, **k):
        log.append((_specgen_caller(), "stat", os.fspath(path) if not isinstance(path, int) else str(path)))
        return real_stat(path, *a, **k)

    def lstat(path, *a, **k):
        log.append((_specgen_caller(), "lstat", os.fspath(path)))
        return real_lstat(path, *a, **k)

    monkeypatch.setattr(builtins, "open", opened)
    monkeypatch.setattr(os, "stat", stat)
    monkeypatch.setattr(os, "lstat", lstat)
    monkeypatch.setattr(io, "open", opened)
    monkeypatch.setattr(os, "scandir", scanned)
    monkeypatch.setattr(os, "listdir", listed)
    return log


def _not_through_the_reader(io_log) -> list[tuple[str, str]]:
    """Opens and listings not made through a Files, and tests of a path (stat) made outside
    specgen/reader/ (the discovery itself stats a symlinked spec.md)."""
    return sorted(
        {
            (who, what)
            for who, what, _ in io_log
            if who not in ("?", "reader.files")
            and not (what in ("stat", "lstat") and who.startswith("specgen.reader."))
        }
    )


@pytest.mark.parametrize("tree", [CHANGES, SPECS], ids=["changes-rules", "specs-rules"])
@pytest.mark.parametrize("strict", [False, True])
def test_validate_reads_through_the_reader_each_file_once(io_log, tree: Path, strict: bool):
    report_json(tree, strict=strict)
    assert io_log, "the run read nothing: the probe is broken"
    outside = _not_through_the_reader(io_log)
    assert not outside, f"file access not through the reader: {outside}"
    twice = {p: n for p, n in Counter(p for _, what, p in io_log if what == "open").items() if n > 1}
    assert not twice, f"{len(twice)} files opened more than once in one run, e.g. {sorted(twice.items())[:3]}"
    listed = {p: n for p, n in Counter(p for _, what, p in io_log if what == "scandir").items() if n > 1}
    assert not listed, f"{len(listed)} folders listed more than once in one run, e.g. {sorted(listed.items())[:3]}"


def test_archive_plan_reads_through_the_reader(io_log):
    planned = 0
    for change in sorted(p.name for p in (CHANGES / "openspec" / "changes").iterdir() if p.name != "archive"):
        try:
            plan_archive(CHANGES, change)
            planned += 1
        except ArchiveAbort:
            pass
    assert planned, "no change of the fixture could be planned: the probe is broken"
    outside = _not_through_the_reader(io_log)
    assert not outside, f"file access not through the reader: {outside}"


def test_files_reads_once_and_remembers_errors(tmp_path: Path):
    f = tmp_path / "a.md"
    f.write_bytes(b"one \xff\n")
    files = Files()
    assert files.text(f) == "one \ufffd\n"  # as Node's readFile decodes it
    f.unlink()
    assert files.text(f) == "one \ufffd\n", "a second read in the same run must not go to the disk"
    with pytest.raises(FileNotFoundError):
        Files().text(f)
    for _ in range(2):  # an error is raised again, as it was
        with pytest.raises(FileNotFoundError):
            files.text(tmp_path / "missing.md")


def _row_names(rows) -> list[str]:
    return [r.name for r in rows]


TABLES = {
    validate_spec: ("SPEC_RULES", "SCHEMA_REQUIREMENT_RULES", "REQUIREMENT_RULES"),
    validate_change: ("CHANGE_RULES", "DELTA_FILE_RULES", "BLOCK_RULES"),
}


def test_rule_names_are_unique_per_table():
    for module, names in TABLES.items():
        for name in names:
            rows = _row_names(getattr(module, name))
            assert rows and len(rows) == len(set(rows)), (name, rows)


def test_every_rule_row_reports_something_on_the_fixtures(monkeypatch):
    """A row that never reports on the parity fixtures is dead or untested."""
    fired: Counter = Counter()

    def counted(rule):
        def check(*args):
            out = rule.check(*args)
            if out:
                fired[rule.name] += 1
            return out

        return type(rule)(rule.name, check, rule.validate_only)

    for module, names in TABLES.items():
        for name in names:
            monkeypatch.setattr(module, name, tuple(counted(r) for r in getattr(module, name)))
    # Two SPEC_RULES rows run a per-requirement table they were built with: build them again over
    # the counted tables (the counted wrapper of the row itself then counts the whole row).
    rebuilt = {
        "requirement-schema": validate_spec._each_requirement(validate_spec.SCHEMA_REQUIREMENT_RULES),
        "requirements": validate_spec._each_requirement(validate_spec.REQUIREMENT_RULES),
    }
    spec_rows = tuple(
        counted(type(r)(r.name, rebuilt[r.name])) if r.name in rebuilt else r for r in validate_spec.SPEC_RULES
    )
    monkeypatch.setattr(validate_spec, "SPEC_RULES", spec_rows)
    trees = sorted(p.parent for p in FIXTURES.glob("parity-*/*/openspec"))
    assert trees, "no parity fixture found"
    for tree in trees:
        report_json(tree, strict=True)
    every = [r.name for module, names in TABLES.items() for name in names for r in getattr(module, name)]
    silent = [n for n in every if not fired[n]]
    assert not silent, f"rule rows that report nothing on any parity fixture: {silent}"
