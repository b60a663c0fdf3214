"""A tree as an attacker or an unlucky user leaves it: names that read as code, a planted cache, a damaged
lock, odd folder names, foreign files, paths out of the project, a broken environment. Each run must stay
inert (no code of the tree runs), keep the gate honest, and fail, when it fails, with one line and exit 2
(docs/compiler.md, "Hostile input"). Every case runs specgen as a user does (tests/specgen/cli_project.py)."""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

import pytest

from tests.specgen import cli_project as P

PAYLOAD = 'x"""+getattr(__import__("os"),"system")("touch PWNED")+"""'


def _spec(cap: str, scenario: str = "Hello") -> str:
    return (
        f"# {cap}\n\n## Purpose\nGreets people by name, in a friendly way.\n\n## Requirements\n\n"
        "### Requirement: Greet\nThe system SHALL greet the user.\n\n"
        f"#### Scenario: {scenario}\n- **WHEN** a user arrives\n- **THEN** the system greets them\n"
    )


def _project(tmp_path: Path, caps=("greeting",), bind: bool = True) -> Path:
    root = P.make_project(tmp_path / "proj")
    for cap in caps:
        (root / "openspec" / "specs" / cap).mkdir(parents=True)
        (root / "openspec" / "specs" / cap / "spec.md").write_text(_spec(cap), encoding="utf-8")
    (root / "openspec" / "changes").mkdir(parents=True)
    if bind:
        body = "from specgen import check\n"
        for n, cap in enumerate(caps):
            body += f"\n\n@check({cap!r}, 'Greet', 'Hello')\ndef check_hello_{n}():\n    assert True\n"
        (root / "tests" / "checks" / "greet.py").write_text(body, encoding="utf-8")
    return root


def _ok(proc, rc=0, what=""):
    P.assert_no_crash(proc, what)
    assert proc.returncode == rc, P.output(proc)[-3000:]
    return proc


def _one_line_error(proc, *words):
    """Exit 2 with one `specgen: ... error: ...` line naming each of `words`."""
    P.assert_no_crash(proc, "")
    assert proc.returncode == 2, P.output(proc)[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if "error" in ln]
    assert len(lines) >= 1 and all(w in lines[0] for w in words), proc.stderr


# ---------------------------------------------------------------- item 1: names never become code
def test_a_capability_named_like_code_stays_text(tmp_path):
    root = _project(tmp_path, caps=(PAYLOAD,), bind=False)
    _ok(P.specgen(root, "generate"))
    _ok(P.specgen(root, "stub", f"{PAYLOAD}/greet/hello", "--write"))
    assert not (root / "PWNED").exists()
    P.pytest_run(root, "tests/generated", "-q", "-p", "no:cacheprovider")
    assert not (root / "PWNED").exists(), "the generated module ran tree text as code"
    run = P.pytest_run(root, "tests/generated", "-q", "-p", "no:cacheprovider", "-o", "python_functions=test_*")
    assert P.pytest_counts(run)["failed"] == 1  # the stub's NotImplementedError: collected, run, not executed text
    assert not (root / "PWNED").exists()


# ---------------------------------------------------------------- item 2: the cache is data
class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_a_planted_cache_is_no_cache(tmp_path):
    root = _project(tmp_path)
    _ok(P.specgen(root, "generate"))
    report = root / "build" / "specgen"
    for name in ("compile-cache.pickle", "compile-cache.json"):
        (report / name).write_bytes(pickle.dumps(_Payload()))
    _ok(P.specgen(root, "check"))
    assert not (root / "PWNED").exists(), "check unpickled the cache"
    # A file under the right key, of the wrong shape: no cache, not an error.
    head = (report / "compile-cache.json").read_bytes().split(b"\n", 1)[0]
    assert head.startswith(b"specgen-compile-cache/")
    for body in (b'["c", "Project", 1, 2, 3]', b"[" * 100000, b'["c", "os.system", "touch PWNED"]', b"\xff"):
        (report / "compile-cache.json").write_bytes(head + b"\n" + body)
        _ok(P.specgen(root, "check"))
    assert not (root / "PWNED").exists()


# ---------------------------------------------------------------- item 6: a damaged lock resets nothing
def test_an_emptied_lock_does_not_review_an_edited_scenario(tmp_path):
    root = _project(tmp_path)
    _ok(P.specgen(root, "generate"))  # a new project: its first generate starts the lock
    _ok(P.specgen(root, "check"))
    spec = root / "openspec" / "specs" / "greeting" / "spec.md"
    spec.write_text(spec.read_text().replace("greets them", "insults them"), encoding="utf-8")
    (root / "specgen.lock").write_text("", encoding="utf-8")
    _ok(P.specgen(root, "generate"))
    P.pytest_run(root, "tests/generated", "-q", "-p", "no:cacheprovider")
    gate = _ok(P.specgen(root, "report", "--gate"), rc=1)
    assert "specgen review greeting/greet/hello" in P.output(gate)
    _ok(P.specgen(root, "check"), rc=1)
    _ok(P.specgen(root, "review", "greeting/greet/hello"))
    _ok(P.specgen(root, "report", "--gate"))


def test_a_broken_lock_line_or_a_lock_folder_is_an_error_naming_it(tmp_path):
    root = _project(tmp_path)
    _ok(P.specgen(root, "generate"))
    lock = root / "specgen.lock"
    lock.write_text(lock.read_text() + "specs greeting/greet/hello\n", encoding="utf-8")
    _one_line_error(P.specgen(root, "generate"), "specgen.lock:5:")
    lock.unlink()
    lock.mkdir()
    _one_line_error(P.specgen(root, "check"), "specgen.lock", "folder")


# ---------------------------------------------------------------- item 7: any folder name compiles
def test_folders_with_spaces_and_dots_compile_run_and_report(tmp_path):
    root = _project(tmp_path, caps=("user auth", "api.v2"))
    _ok(P.specgen(root, "generate"))
    names = sorted(p.name for p in (root / "tests" / "generated").glob("test_*.py"))
    assert len(names) == 2 and all(Path(n).stem.isidentifier() for n in names), names
    _ok(P.specgen(root, "generate"))  # the lock reads back
    _ok(P.specgen(root, "check"))
    run = P.pytest_run(root, "tests/generated", "-q", "-p", "no:cacheprovider")
    assert P.pytest_counts(run)["passed"] == 2, P.output(run)
    _ok(P.specgen(root, "report", "--gate"))
    assert "user%20auth/greet/hello" in (root / "specgen.lock").read_text()


# ---------------------------------------------------------------- items 4, 5: writes stay ours and inside
def test_a_file_specgen_did_not_write_is_never_replaced(tmp_path):
    root = _project(tmp_path)
    mine = root / "tests" / "generated" / "test_greeting.py"
    mine.parent.mkdir(parents=True)
    mine.write_text("def test_mine():\n    assert True\n", encoding="utf-8")
    _one_line_error(P.specgen(root, "generate"), "test_greeting.py", "not written by specgen")
    assert mine.read_text() == "def test_mine():\n    assert True\n"


@pytest.mark.parametrize("key", ["output", "lock", "report", "manual", "baseline"])
@pytest.mark.parametrize("value", ["../outside", "/tmp/outside", "a/../../outside"])
def test_configured_paths_out_of_the_project_are_refused(tmp_path, key, value):
    root = _project(tmp_path)
    py = root / "pyproject.toml"
    text = py.read_text().replace('output = "tests/generated"\n', "")
    py.write_text(text.replace("[tool.specgen]\n", f"[tool.specgen]\n{key} = {value!r}\n"), encoding="utf-8")
    _one_line_error(P.specgen(root, "generate"), f"tool.specgen.{key}", "outside the project")
    assert not (tmp_path / "outside").exists()


def test_roots_out_of_the_project_are_refused(tmp_path):
    root = _project(tmp_path)
    py = root / "pyproject.toml"
    py.write_text(py.read_text().replace('specs = "openspec"\n', 'roots = ["../*/openspec"]\n'), encoding="utf-8")
    _one_line_error(P.specgen(root, "check"), "tool.specgen.roots")


@pytest.mark.parametrize("link", ["tests/generated", "specgen.lock", "tests/generated/test_greeting.py"])
def test_a_link_out_of_the_project_is_not_written_through(tmp_path, link):
    root = _project(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside if link == "tests/generated" else outside / "victim"
    if link != "tests/generated":
        target.write_text("# precious\n", encoding="utf-8")  # reads as an empty lock: only the link can stop a write
    (root / link).parent.mkdir(parents=True, exist_ok=True)
    (root / link).symlink_to(target)
    _one_line_error(P.specgen(root, "generate"), Path(link).name)
    assert sorted(p.name for p in outside.iterdir()) == ([] if link == "tests/generated" else ["victim"])
    if link != "tests/generated":
        assert target.read_text() == "# precious\n"


# ---------------------------------------------------------------- item 8: the environment, not a bug
def test_environment_failures_are_one_line_not_internal_errors(tmp_path):
    root = _project(tmp_path)
    _ok(P.specgen(root, "generate"))
    results = root / "build" / "specgen" / "results.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    for bad in ('{"results": [1, 2]}', '{"results": 5}', "[]", '{"results": [{"scenario_id": []}]}'):
        results.write_text(bad, encoding="utf-8")
        _one_line_error(P.specgen(root, "report"), "results.json")
    results.unlink()
    stamp = root / "build" / "specgen" / "generate-stamp.json"
    for bad in ('{"key": 1}', "[1]", '{"key": "x"}'):
        stamp.write_text(bad, encoding="utf-8")
        _ok(P.specgen(root, "generate"))
    _one_line_error(P.specgen(root, "report", "--out", "/proc/specgen-report"), "/proc/specgen-report")


def test_a_file_where_the_output_folder_belongs_is_one_line(tmp_path):
    root = _project(tmp_path)
    (root / "tests" / "generated").write_text("not a folder\n", encoding="utf-8")
    _one_line_error(P.specgen(root, "generate"), "tests/generated")


# ---------------------------------------------------------------- item 9: the step summary is text
def test_report_md_escapes_html_and_source_url_is_http_only(tmp_path):
    root = _project(tmp_path, caps=("greeting",), bind=False)
    spec = root / "openspec" / "specs" / "greeting" / "spec.md"
    spec.write_text(
        spec.read_text().replace("### Requirement: Greet", "### Requirement: Greet <img src=x onerror=alert(1)>")
    )
    _ok(P.specgen(root, "generate"))
    _ok(P.specgen(root, "report"))
    md = (root / "build" / "specgen" / "report.md").read_text()
    assert "<img" not in md and "&lt;img src=x onerror=alert(1)&gt;" in md
    for url in ("javascript:alert(1)//", "file:///etc/passwd", "data:text/html,x"):
        _one_line_error(P.specgen(root, "report", "--source-url", url), "--source-url")
    _ok(P.specgen(root, "report", "--source-url", "https://example.com/o/r/blob/abc/"))


if sys.platform == "win32":  # pragma: no cover - the links and modes above are POSIX
    pytestmark = pytest.mark.skip("POSIX file system semantics")


def test_a_full_or_read_only_disk_is_one_line_naming_the_path(tmp_path, monkeypatch, capsys):
    import errno

    from specgen import cli
    from specgen.cli import compile as cli_compile

    root = _project(tmp_path)

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    assert cli.main(["generate", "--root", str(root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "test_greeting.py" in err[0] and "No space left on device" in err[0], err
    monkeypatch.undo()

    def read_only(config, change=None):
        raise OSError(errno.EROFS, "Read-only file system", str(root / "specgen.lock"))

    monkeypatch.setattr(cli_compile.generate, "plan", read_only)
    assert cli.main(["generate", "--root", str(root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "specgen.lock: error: Read-only file system" in err[0] and "internal" not in err[0], err


def test_a_report_folder_linked_out_gets_no_cache_and_no_report(tmp_path):
    root = _project(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "build").mkdir()
    (root / "build" / "specgen").symlink_to(outside)
    _ok(P.specgen(root, "generate"))  # the cache and the stamp are only an optimisation: skipped
    _ok(P.specgen(root, "check"))
    _one_line_error(P.specgen(root, "report"), "report.json", "leads out of the project")
    assert list(outside.iterdir()) == []
