"""Start-up: each command imports only what it uses (validate and list: no Jinja2, pytest, markdown-it,
report or compiler code; no PyYAML for `key: word` metadata; no tomllib without a pyproject.toml). Read
from `python -X importtime`, in a separate process, on an OpenSpec tree; the timing itself is
bench/bench_validate.py's job. And the metadata fast path reads what PyYAML reads.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from specgen.rules import metadata
from tests.specgen import cli_project as P

NEVER = ("jinja2", "pytest", "_pytest", "markdown_it", "specgen.report", "specgen.compile", "specgen.rules.archive",
         "specgen.archive", "importlib.metadata", "yaml", "tomllib", "shutil")
# validate reads task lines, not proposals or `show`'s delta view (reader.tasklines holds the one task rule).
NEVER_IN_VALIDATE = ("specgen.reader.changes", "specgen.reader.deltas", "specgen.reader.load")

CHANGE = {
    "proposal.md": "## Why\nA reason long enough.\n\n## What Changes\n- **echo:** add a rule\n",
    ".openspec.yaml": "schema: spec-driven\ncreated: 2026-07-03\n",
    "specs/echo/spec.md": "## ADDED Requirements\n### Requirement: Loud\nThe echo SHALL shout.\n\n"
    "#### Scenario: Shout\n- **WHEN** a word is given\n- **THEN** it comes back\n",
}
SPEC = ("# echo Specification\n\n## Purpose\nEcho words back to the caller, unchanged.\n\n## Requirements\n"
        "### Requirement: Echo\nThe echo SHALL return its input.\n\n#### Scenario: Word\n- **WHEN** a word\n"
        "- **THEN** the word\n")


def _imported(cwd, *args: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-P", "-X", "importtime", "-m", "specgen", *args], cwd=cwd,
                          env=P.env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    return {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize("args", [("validate", "--all", "--json"), ("list", "--specs"), ("list", "--json"),
                                  ("show", "echo", "--json")])
def test_reading_commands_import_only_what_they_use(tmp_path, args):
    (tmp_path / "openspec" / "specs" / "echo").mkdir(parents=True)
    (tmp_path / "openspec" / "specs" / "echo" / "spec.md").write_text(SPEC, encoding="utf-8")
    for rel, text in CHANGE.items():
        path = tmp_path / "openspec" / "changes" / "add-loud" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    modules = _imported(tmp_path, *args)
    assert "specgen.cli" in modules  # the listing is read
    # `show --json` names each requirement and scenario by its specgen id: the id rules (and no other
    # part of the compiler) may load there.
    allowed = {"specgen.compile", "specgen.compile.identity"} if args[0] == "show" else set()
    never = NEVER + (NEVER_IN_VALIDATE if args[0] == "validate" else ())
    loaded = sorted(
        m for m in modules - allowed if m in never or m.startswith(tuple(n + "." for n in never))
    )
    assert not loaded, f"specgen {' '.join(args)} imported {loaded}"


YAML = ["schema: spec-driven\ncreated: 2026-07-03\n", "schema: flokay\n", "a: null\n", "a: yes\n", "a: True\n",
        "a: e5\n", "a: x.y\n", "a:   b  \n", "a: b\na: c\n", "a: b # c\n", "a:b\n", " a: b\n", "a: b\r\n", "",
        "a: nan\n", "a: _x\n", "A_b-c: d-e_f.g\n", "a: 1\n", "a: 0x1f\n", "schema: spec-driven\ncontext: |\n  x\n"]


@pytest.mark.parametrize("text", YAML)
def test_metadata_fast_path_reads_what_pyyaml_reads(text, monkeypatch):
    fast = metadata._simple_mapping(text)
    monkeypatch.setattr(metadata, "_simple_mapping", lambda _text: None)
    try:
        slow = metadata._yaml_load(text)
    except Exception as exc:  # noqa: BLE001 - PyYAML refuses it: the fast path must refuse it too
        slow = exc
    assert fast is None or fast == slow, (fast, slow)


CONFIGS = ["schema: spec-driven\n", "schema: spec-driven\ncontext: |\n  Tech stack\n", "schema: flokay\n",
           "schema: spec-driven\nschema: flokay\n", "schema: spec-driven\n\"sch\\x65ma\": flokay\n",
           "schema: spec-driven\n: : bad [yaml\n", "# the schema\nschema: spec-driven\n", "schema: spec-driven\r\n"]


@pytest.mark.parametrize("text", CONFIGS)
def test_config_schema_shortcut_agrees_with_pyyaml(tmp_path, text, monkeypatch):
    (tmp_path / "openspec" / "changes" / "c").mkdir(parents=True)
    (tmp_path / "openspec" / "config.yaml").write_bytes(text.encode("utf-8"))
    fast = metadata.resolve_schema_name(tmp_path / "openspec" / "changes" / "c", tmp_path)
    monkeypatch.setattr(metadata, "_names_the_default_schema", lambda _text: False)
    assert metadata.resolve_schema_name(tmp_path / "openspec" / "changes" / "c", tmp_path) == fast
