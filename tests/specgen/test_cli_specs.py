"""`specgen list` and `specgen show`: human output, flags, extras in the JSON, errors."""

from __future__ import annotations

import json

from tests.specgen.parity import FIXTURES, run_specgen

STRUCT = str(FIXTURES / "specs-structure")
DELTAS = str(FIXTURES / "changes-deltas")


def test_show_spec_json_adds_name_line_and_id_after_the_cli_keys():
    rc, out, err = run_specgen("show", "closing-hashes", "--json", "--root", STRUCT, "--no-interactive")
    assert rc == 0, err
    data = json.loads(out)
    assert list(data) == ["id", "title", "overview", "requirementCount", "requirements", "metadata", "root"]
    req = data["requirements"][0]
    assert list(req) == ["text", "scenarios", "name", "line", "id"]
    assert (req["name"], req["line"], req["id"]) == ("Closed header", 8, "closing-hashes/closed-header")
    assert req["scenarios"][0] == {"rawText": "- **WHEN** a header ends in hashes\n- **THEN** the name drops them",
                                   "name": "Closed scenario", "line": 11,
                                   "id": "closing-hashes/closed-header/closed-scenario"}


def test_show_change_json_has_names_on_delta_requirements():
    rc, out, err = run_specgen("show", "basic", "--json", "--root", DELTAS)
    assert rc == 0, err
    data = json.loads(out)
    assert (data["id"], data["title"], data["deltaCount"]) == ("basic", "Basic deltas", 4)
    added = data["deltas"][0]
    assert list(added) == ["spec", "operation", "description", "requirement", "requirements"]
    assert added["requirement"]["name"] == "Logout" and added["requirement"]["line"] == 3
    assert data["deltas"][3] == {"spec": "auth", "operation": "RENAMED",
                                 "description": 'Rename requirement from "Login" to "Sign in"',
                                 "rename": {"from": "Login", "to": "Sign in"}}


def test_show_human_output_is_readable():
    rc, out, err = run_specgen("show", "scenario-shapes", "--root", STRUCT)
    assert rc == 0, err
    assert "Requirement: Anchored  (line 42)" in out
    assert "Scenario: With anchor  (line 45)  [id: shapes/anchored-1]" in out
    rc, out, err = run_specgen("show", "basic", "--type", "change", "--root", DELTAS)
    assert rc == 0, err
    assert out.startswith("basic: Basic deltas") and "auth: RENAMED 'Login' -> 'Sign in'" in out


def test_show_type_guesses_and_type_flag():
    rc, out, _ = run_specgen("show", "basic", "--json", "--root", DELTAS)
    assert rc == 0 and "deltas" in json.loads(out)
    rc, out, _ = run_specgen("show", "auth", "--json", "--root", DELTAS)
    assert rc == 0 and "requirements" in json.loads(out)
    rc, out, err = run_specgen("show", "auth", "--type", "change", "--json", "--root", DELTAS)
    assert rc == 2 and "not found" in json.loads(out)["status"][0]["message"]


def test_show_errors_match_the_cli_messages():
    rc, out, err = run_specgen("show", "no-purpose", "--json", "--root", STRUCT)
    assert rc == 2
    assert json.loads(out) == {"status": [{"severity": "error", "code": "show_error",
                                           "message": "Spec must have a Purpose section"}]}
    assert err.startswith("specgen: ") and "no-purpose/spec.md: error: Spec must have a Purpose section" in err
    rc, out, err = run_specgen("show", "no-proposal", "--type", "change", "--root", DELTAS)
    assert rc == 2 and out == "" and 'has no proposal.md yet' in err
    rc, out, err = run_specgen("show", "namespace", "--type", "change", "--root", DELTAS)
    assert rc == 2 and "is not a change: it is a folder wrapping openspec/changes/namespace/inner-change/" in err
    rc, out, err = run_specgen("show", "2025-01-01-old", "--json", "--root", DELTAS)
    assert rc == 2 and json.loads(out)["status"][0]["code"] == "unknown_item"  # archived: not shown, as in the CLI


def test_list_human_output():
    rc, out, err = run_specgen("list", "--specs", "--root", STRUCT)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0] == "Specs:"
    assert [ln.split()[0] for ln in lines[1:4]] == ["alpha", "area/nested-cap", "beta"]
    assert "closing-hashes" in out and "requirements 3" in out
    rc, out, err = run_specgen("list", "--root", DELTAS)
    assert rc == 0, err
    assert out.startswith("Changes:") and "not a change" in out and "Warning: \"namespace\" is not a change" in out


def test_list_sort_by_name_and_specs_order_follows_locale_compare():
    rc, out, _ = run_specgen("list", "--json", "--sort", "name", "--root", DELTAS)
    names = [c["name"] for c in json.loads(out)["changes"]]
    assert names[:3] == [".hidden-change", "basic", "delta-shapes"]
    rc, out, _ = run_specgen("list", "--specs", "--json", "--root", STRUCT)
    ids = [s["id"] for s in json.loads(out)["specs"]]
    assert ids.index("beta_x") < ids.index("beta-x") < ids.index("boundary") < ids.index("Zeta")


def test_root_defaults_to_the_nearest_folder_holding_openspec(monkeypatch):
    monkeypatch.chdir(FIXTURES / "specs-structure" / "openspec" / "specs" / "area")
    rc, out, err = run_specgen("show", "area/nested-cap", "--json")
    assert rc == 0, err
    data = json.loads(out)
    assert data["id"] == "area/nested-cap" and data["root"]["path"].endswith("specs-structure")


def test_import_specgen_parser_stays_light():
    import subprocess
    import sys

    code = ("import sys, specgen.reader.load, specgen.cli.specs, specgen.cli.validate, specgen.cli.apply, specgen.cli.views; "
            "heavy = [m for m in ('markdown_it', 'jinja2', 'yaml', 'pytest', 'torch') if m in sys.modules]; "
            "print(heavy)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_reading_commands_load_neither_the_compiler_nor_its_heavy_imports():
    import subprocess
    import sys

    from tests.specgen.oracle import REPO

    code = ("import contextlib, io, sys\nfrom specgen.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
            f"    for argv in (['list', '--specs'], ['list'], ['show', 'packing'], ['validate', '--all']):\n"
            f"        assert main([*argv, '--root', {str(REPO)!r}]) == 0, argv\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jinja2', 'pytest', 'markdown_it', 'torch')\n"
            "             or m.startswith(('specgen.compile', 'specgen.report'))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr
