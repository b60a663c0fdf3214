"""specgen validate: issue locations, output formats, exit codes, strict verdicts (no oracle needed,
except the one collation check against Node's own localeCompare)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from specgen.cli import main
from specgen.reader.text import js_len
from specgen.rules.collate import collation_key
from specgen.rules.validate import validate, validate_all
from specgen.rules.validate_spec import is_valid

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "parity-validate"
SPECS = FIX / "specs-rules"
CHANGES = FIX / "changes-rules"


def _line_of(path: Path, needle: str, nth: int = 1) -> int:
    hits = [i for i, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1) if needle in line]
    return hits[nth - 1]


def test_spec_issues_point_at_the_requirement_header():
    issues = validate(SPECS, "no-shall")
    spec = SPECS / "openspec/specs/no-shall/spec.md"
    by_msg = {i.message.split(" ")[1]: i for i in issues if i.message.startswith("Requirement ")}
    assert by_msg['"Alpha"'].line == _line_of(spec, "### Requirement: Alpha")
    assert by_msg['"Alpha"'].level == "warning" and by_msg['"Alpha"'].locator == "requirements[0]"
    assert all(i.path == "openspec/specs/no-shall/spec.md" for i in issues)
    gamma = next(i for i in issues if "gamma" in i.message)
    assert gamma.level == "error" and gamma.line == _line_of(spec, "SHALL gamma")


def test_delta_issues_point_at_the_delta_line():
    issues = validate(CHANGES, "added-dup")
    delta = CHANGES / "openspec/changes/added-dup/specs/auth/spec.md"
    dup = next(i for i in issues if i.message.startswith("Duplicate requirement in ADDED"))
    assert dup.path == "openspec/changes/added-dup/specs/auth/spec.md"
    assert dup.line == _line_of(delta, "### Requirement: Twice", 2)
    loss = next(i for i in validate(CHANGES, "modified-drops-scenario") if "omits scenario" in i.message)
    assert loss.line == 2 and loss.locator == "auth/spec.md"


def test_purpose_and_section_issues_are_located():
    brief = next(i for i in validate(SPECS, "brief-purpose") if i.locator == "overview")
    assert brief.line == _line_of(SPECS / "openspec/specs/brief-purpose/spec.md", "## Purpose")
    generated = next(i for i in validate(SPECS, "placeholder-generated") if i.locator == "overview")
    assert generated.line == _line_of(SPECS / "openspec/specs/placeholder-generated/spec.md", "TBD - created")
    missing = validate(SPECS, "no-purpose")
    assert [(i.level, i.locator, i.line) for i in missing] == [("error", "file", 1)]
    assert missing[0].message.startswith("Spec must have a Purpose section. Missing required sections.")


def test_strict_turns_warnings_into_failures():
    issues = validate(SPECS, "brief-purpose")
    assert {i.level for i in issues} == {"warning"}
    assert is_valid(issues) and not is_valid(issues, strict=True)
    info_only = validate(SPECS, "long-text")
    assert {i.level for i in info_only} == {"info"} and is_valid(info_only, strict=True)


def test_requirement_length_counts_utf16_units_like_javascript():
    long = {i.locator for i in validate(SPECS, "long-text") if i.level == "info"}
    emoji = "The system SHALL " + "\U0001F600" * 242 + "."  # 260 code points, 502 UTF-16 units
    assert len(emoji) <= 500 < js_len(emoji)
    assert "requirements[1]" in long  # the emoji requirement: JavaScript counts UTF-16 units


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_human_output_is_one_line_per_issue(capsys):
    code, out, err = _run(capsys, "validate", "--all", "--root", str(SPECS))
    assert code == 1
    lines = out.splitlines()
    assert lines and all(re.match(r"^openspec/specs/[^:]+:\d+: (error|warning|info): \S", ln) for ln in lines), lines[:5]
    assert sum(len(r.issues) for r in validate_all(SPECS)["results"]) == len(lines)
    assert "Totals:" in err


def test_json_output_has_cli_fields_plus_line(capsys):
    code, out, _ = _run(capsys, "validate", "no-shall", "--json", "--root", str(SPECS))
    doc = json.loads(out)
    assert list(doc) == ["items", "summary", "version", "root"]
    item = doc["items"][0]
    assert list(item) == ["id", "type", "valid", "issues", "durationMs"]
    assert all(list(i) == ["level", "path", "line", "message"] for i in item["issues"])
    assert doc["summary"] == {"totals": {"items": 1, "passed": 0, "failed": 1},
                              "byType": {"spec": {"items": 1, "passed": 0, "failed": 1}}}
    assert code == 1


@pytest.mark.parametrize("argv,code", [
    (["validate", "good"], 0),
    (["validate", "brief-purpose"], 0),
    (["validate", "brief-purpose", "--strict"], 1),
    (["validate", "no-purpose"], 1),
    (["validate", "no-such-item"], 2),
    (["validate"], 2),
    (["validate", "--specs", "good"], 2),
    (["validate", "good", "--type", "change"], 1),
])
def test_exit_codes(capsys, argv, code):
    assert main([*argv, "--root", str(SPECS)]) == code
    _, err = capsys.readouterr()
    assert "Traceback" not in err


def test_unknown_item_json_status_and_missing_root(capsys, tmp_path):
    code, out, _ = _run(capsys, "validate", "nope", "--json", "--root", str(SPECS))
    assert code == 2 and json.loads(out)["status"][0]["code"] == "unknown_item"
    code, _, err = _run(capsys, "validate", "--all", "--root", str(tmp_path))
    assert code == 2 and "no openspec/" in err and "Traceback" not in err


def test_changes_and_specs_scopes(capsys):
    report = validate_all(CHANGES, specs=False)
    assert {r.type for r in report["results"]} == {"change"}
    assert list(report["summary"]["byType"]) == ["change"]
    code, out, _ = _run(capsys, "validate", "--specs", "--json", "--root", str(CHANGES))
    assert {i["type"] for i in json.loads(out)["items"]} == {"spec"}
    assert code == 1  # billing has a requirement (### Notes) with no scenario


def test_unreadable_bytes_are_read_like_node(tmp_path):
    shutil.copytree(SPECS / "openspec/specs/good", tmp_path / "openspec/specs/good")
    spec = tmp_path / "openspec/specs/good/spec.md"
    spec.write_bytes(spec.read_bytes().replace(b"Describe", b"Descr\xffibe"))
    assert validate(tmp_path, "good") == []


def test_item_order_follows_javascript_localecompare():
    # One key for every call site (list, validate --all, task files): symbols such as `€` before
    # digits, accents breaking ties before case, other scripts after Latin letters.
    names = ["b", "A", "a-b", "a_b", "a1", "ab", "B-2", "a", "Zeta", "alpha/beta", "alpha-beta", "x.y", "x-y",
             "€", "a€", "é", "e", "E", "É", "eb", "éa", "1", "9z", "—x", "α", "z", "Ω", "_", "a b", "ä", "b€", "b1", "b$"]
    js = subprocess.run(["node", "-e", f"console.log(JSON.stringify({json.dumps(names)}.sort((a,b)=>a.localeCompare(b))))"],
                        capture_output=True, text=True, check=True)
    assert sorted(names, key=collation_key) == json.loads(js.stdout)
