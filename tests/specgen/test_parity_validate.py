"""Parity with the official OpenSpec CLI 1.13.2: `validate --all --json [--strict]` and `archive --yes --json`.

Compared on every spec and change of: the project's own openspec/ (whatever exists at test time),
the public corpora (tests/specgen/corpora.py: OpenSpec's own tree and two projects that use it), and every
fixture project under tests/fixtures/parity-*/.
Verdicts, issue levels, paths, messages and their order, summary totals and item order must be equal;
where the CLI reports an issue's `line`, ours must be the same line (ours also carries `line` where
the CLI has none). Archive: the CLI's status code/message/fix on refusal, its result object on success,
and the resulting file tree (merged spec bytes, retired specs, the moved change) byte for byte.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from specgen.archive import archive_change
from specgen.rules.archive import apply_change
from specgen.rules.merge import ArchiveAbort
from specgen.rules.validate import report_json
from tests.specgen import corpora
from tests.specgen.corpora import marks, name_of
from tests.specgen.oracle import REPO, SHARED_CORPUS, run

FIXTURES = REPO / "tests" / "fixtures"


def _projects() -> list[Path]:
    roots = []
    own = REPO / "openspec"
    if any((own / d).is_dir() and any((own / d).iterdir()) for d in ("specs", "changes")):
        roots.append(REPO)
    roots.extend(corpora.corpus(name) for name in corpora.NAMES)
    for group in sorted(FIXTURES.glob("parity-*")):
        if (group / "openspec").is_dir():
            roots.append(group)
        roots.extend(sorted(p.parent for p in group.glob("*/openspec") if p.is_dir()))
    return roots


PROJECTS = _projects()
PROJECT_PARAMS = [pytest.param(p, marks=marks(name_of(p))) for p in PROJECTS]


def _pid(p: Path) -> str:
    if p == REPO:
        return "own"
    if name_of(p):
        return name_of(p)
    return p.relative_to(FIXTURES).as_posix()


def _cli_validate(root: Path, strict: bool) -> tuple[int, dict]:
    proc = run(root, "validate", "--all", "--json", *(["--strict"] if strict else []))
    try:
        return proc.returncode, json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"openspec validate in {root}: not JSON\n{proc.stdout[:500]}\n{proc.stderr[:500]}")


def assert_same_report(cli: dict, ours: dict) -> None:
    assert [(i["type"], i["id"]) for i in ours["items"]] == [(i["type"], i["id"]) for i in cli["items"]], "item order"
    assert list(ours) == list(cli), "top-level fields"
    assert ours["summary"] == cli["summary"]
    assert ours["version"] == cli["version"]
    assert ours["root"] == cli["root"]
    for a, b in zip(cli["items"], ours["items"]):
        where = f"{a['type']} {a['id']}"
        assert list(b) == list(a), f"{where}: item fields"
        assert b["valid"] == a["valid"], f"{where}: verdict; cli issues {a['issues']}, ours {b['issues']}"
        ca = [{k: v for k, v in i.items() if k != "line"} for i in a["issues"]]
        cb = [{k: v for k, v in i.items() if k != "line"} for i in b["issues"]]
        assert cb == ca, f"{where}: issues"
        for ia, ib in zip(a["issues"], b["issues"]):
            assert [k for k in ib if k != "line" or "line" in ia] == list(ia), f"{where}: issue field order"
            if "line" in ia:
                assert ib.get("line") == ia["line"], f"{where}: line of {ia['message'][:80]}"


@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
@pytest.mark.parametrize("root", PROJECT_PARAMS, ids=_pid)
def test_validate_all_matches_cli(root: Path, strict: bool):
    assert (root / "openspec").is_dir(), f"{root}: no openspec/"
    code, cli = _cli_validate(root, strict)
    ours = report_json(root, strict=strict)
    assert_same_report(cli, ours)
    assert (0 if all(i["valid"] for i in ours["items"]) else 1) == code


def test_fixture_projects_are_all_compared():
    ids = {_pid(p) for p in PROJECTS}
    assert set(corpora.NAMES) <= ids
    assert {"parity-validate/specs-rules", "parity-validate/changes-rules"} <= ids


# --------------------------------------------------------------------------------------------
# archive
# --------------------------------------------------------------------------------------------

ARCHIVE_PROJECT = FIXTURES / "parity-validate" / "changes-rules"


def _changes(root: Path) -> list[str]:
    d = root / "openspec" / "changes"
    return sorted(p.name for p in d.iterdir() if p.is_dir() and p.name != "archive" and not p.name.startswith("."))


ARCHIVE_CASES = [(ARCHIVE_PROJECT, c) for c in _changes(ARCHIVE_PROJECT)]
# Where the corpus is absent, one placeholder case stands for its changes (not run, counted, see conftest.py).
ARCHIVE_CASES += [(SHARED_CORPUS, c) for c in _changes(SHARED_CORPUS)] if SHARED_CORPUS.is_dir() else [(SHARED_CORPUS, "*")]


def _tree(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _copy(src: Path, dst: Path, change: str) -> None:
    """The project as archive sees it: its specs, config and schemas, and the one change."""
    base = src / "openspec"
    for entry in base.iterdir():
        if entry.name == "changes":
            continue
        if entry.is_dir():
            shutil.copytree(entry, dst / "openspec" / entry.name, copy_function=shutil.copy)
        else:
            (dst / "openspec").mkdir(parents=True, exist_ok=True)
            shutil.copy(entry, dst / "openspec" / entry.name)
    shutil.copytree(base / "changes" / change, dst / "openspec" / "changes" / change, copy_function=shutil.copy)
    for p in [dst, *dst.rglob("*")]:  # the public corpora may be read-only
        p.chmod(p.stat().st_mode | 0o200)


@pytest.mark.parametrize("root,change", [pytest.param(r, c, marks=marks(name_of(r))) for r, c in ARCHIVE_CASES],
                         ids=[f"{'corpus' if r == SHARED_CORPUS else 'fixture'}-{c}" for r, c in ARCHIVE_CASES])
def test_archive_matches_cli(tmp_path: Path, root: Path, change: str):
    a, b = tmp_path / "cli", tmp_path / "ours"
    _copy(root, a, change)
    _copy(root, b, change)
    proc = run(a, "archive", change, "--yes", "--json")
    cli = json.loads(proc.stdout)
    cli.pop("root", None)
    try:
        outcome = archive_change(b, change)
        ours = {"archive": json.loads(json.dumps(outcome.to_json()).replace(str(b), str(a)))}
    except ArchiveAbort as exc:
        status = {"severity": "error", "code": exc.code, "message": exc.message}
        if exc.fix:
            status["fix"] = exc.fix
        ours = {"archive": None, "status": [status]}
    assert ours == cli
    assert _tree(b) == _tree(a), "the archived project differs from the CLI's"


def test_archive_cases_cover_every_abort_condition():
    """Each refusal the merge knows is exercised by at least one fixture change above."""
    expected = {
        "added-exists": "ADDED failed", "added-near-miss": "differs only in case",
        "modified-missing": "MODIFIED failed", "modified-drops-scenario": "scenario(s) not present",
        "removed-near-miss": "REMOVED failed", "renamed-missing-source": "source not found",
        "renamed-target-exists": "target already exists", "renamed-target-near": "differs only in case",
        "new-capability-modified": "only ADDED requirements are allowed", "no-delta-sections": "no operations",
    }
    for change, needle in expected.items():
        with pytest.raises(ArchiveAbort) as info:
            apply_change(ARCHIVE_PROJECT, change)
        assert needle in info.value.message
