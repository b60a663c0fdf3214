"""Unit tests of the compiler layers, each on its own (the end-to-end behaviour is in tests/checks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from specgen.compile import generator, lock
from specgen.compile.identity import (
    SPECS_VIEW,
    View,
    fingerprint,
    is_valid_id,
    normalize,
    normalize_prose,
    slugify,
    split_id,
)
from specgen.compile.registry import read_module
from specgen.config import load_config
from specgen.errors import SpecgenError
from specgen.report import manual


@pytest.mark.parametrize(
    "name, slug",
    [
        ("Greet by name", "greet-by-name"),
        ("  A/B -- c_d  ", "a-b-c-d"),
        ("Café au lait", "cafe-au-lait"),
        ("100% done!", "100-done"),
    ],
)
def test_slugify(name, slug):
    assert slugify(name) == slug


def test_slugify_of_no_ascii_keeps_its_letters_or_is_a_stable_hash():
    assert slugify("日本語") == "日本語" != slugify("中文") and is_valid_id(f"a/{slugify('日本語')}/b")
    assert slugify("显示 血量!") == "显示-血量" and is_valid_id("hud/显示-血量/受伤")
    assert slugify("🚀") == slugify("🚀") != slugify("✨") and slugify("🚀").startswith("h")  # no letters: a hash
    assert slugify("长" * 60).startswith("h")  # too long to read as a name: a hash
    assert slugify("Ada 显示") == "ada"  # a name with ASCII letters slugs as it always did


def test_nested_capability_ids_split_from_the_right_and_flatten_to_one_file():
    assert is_valid_id("billing/api/create-invoice/order-exists") and is_valid_id("core/a/b")
    assert not is_valid_id("core/a") and not is_valid_id("billing//a/b")
    assert split_id("billing/api/create-invoice/order-exists") == ("billing/api", "create-invoice", "order-exists")
    specs, change = View(SPECS_VIEW, None, ()), View("add-x", "add-x", ())
    assert generator.file_name(specs, "chat-template") == "test_chat_template.py"  # single level: unchanged
    assert generator.file_name(specs, "billing/api") == "test_billing__api.py"
    assert generator.file_name(change, "billing/api") == "changes/test_add_x__billing__api.py"


def test_normalize_drops_anchor_blank_lines_and_runs_of_spaces():
    text = "<!-- specgen-id: a/b/c -->\n- **WHEN**   x \n\n- **THEN** y\r\n"
    assert normalize(text) == "- **WHEN** x\n- **THEN** y"
    assert fingerprint("n", text) == fingerprint("n", "- **WHEN** x\n- **THEN** y")
    assert fingerprint("n", text) != fingerprint("m", text)


def test_normalize_prose_joins_continuation_lines_only():
    one_line_steps = "- **WHEN** x\n- **THEN** y\n| a | b |\n#### Heading"
    assert normalize_prose(one_line_steps) == normalize(one_line_steps)  # old lock fingerprints stay valid
    assert normalize_prose("- **THEN** a b,\n  c d\n- **AND** e") == "- **THEN** a b, c d\n- **AND** e"
    assert normalize_prose("- **THEN** a\n-100 is kept") == "- **THEN** a -100 is kept"  # not a list item
    assert normalize_prose("1. a\n2) b\n* c\n+ d\n> e") == "1. a\n2) b\n* c\n+ d\n> e"
    fenced = "- **THEN** prints\n```\nline one\nline two\n```\nafter"
    assert normalize_prose(fenced) == "- **THEN** prints\n```\nline one\nline two\n```\nafter"
    assert fingerprint("n", "- **THEN** a b\n  c") == fingerprint("n", "- **THEN** a\nb c")
    assert fingerprint("n", "- **THEN** a b c") != fingerprint("n", "- **THEN** a b\n- c")


SAMPLES = [
    "- **WHEN** a b\n- **THEN** c",
    "- **WHEN**: a\n- **AND** b",
    "- **GIVEN** x\n- **WHEN** y\n- **THEN** z",
    "- **WHEN** the `code` runs\n- **THEN** *it* passes",
    "- **WHEN** a [link](x)\n- **THEN** b &amp; c",
    "Free text line\n- **THEN** x",
    "- **WHEN** wrapped\n  continuation\n- **THEN** y",
    "- **WHEN** wrapped\nlazy continuation\n- **THEN** y\n        deeper one",
    "- **WHEN** a\n  and then b\n- **THEN** c\n  when:   d",
    "- **WHEN** a\n\n  second paragraph\n\nafter the list\n- **THEN** c",
    "- **WHEN** a\n  - nested item\n- **THEN** c\n  1. ordered",
    "- **WHEN** a\n  2) b\n- **THEN** c\n  +\n  # not a heading",
    "- **WHEN** a\n  with `code` and *stars*\n- **THEN** c",
    "- **WHEN** 中文 ✨ and\n  emoji 🎉 -100 %\n- **THEN** c",
]


@pytest.mark.parametrize("raw", SAMPLES)
def test_fast_step_path_reads_as_markdown_it_does(raw):
    assert generator.steps(raw) == generator.markdown_steps(raw)


def test_py_literal_round_trips():
    for value in ["plain", 'with "quotes"', "back\\slash", "new\nline", "tab\t", "ünï", ""]:
        assert eval(generator.py_literal(value)) == value  # noqa: S307 - our own literal
    assert generator.py_literal(None) == "None"


def test_docstring_escapes_triple_quotes():
    doc = generator.docstring('a """ b \\ c')
    assert eval('"""' + doc + '\n"""').strip() == 'a """ b \\ c'  # noqa: S307


def test_lock_round_trip_and_bad_line(tmp_path):
    path = tmp_path / "specgen.lock"
    entries = [
        lock.Entry("specs", "a/b/d", "m:f", "1" * 16, "2" * 16),
        lock.Entry("specs", "a/b/c", "m:f", "3" * 16, "4" * 16),
    ]
    assert lock.write(path, entries) is True and lock.write(path, entries) is False
    body = [ln for ln in path.read_text().splitlines() if not ln.startswith("#")]
    assert body == sorted(body)
    assert set(lock.read(path).values()) == set(entries)
    path.write_text(path.read_text() + "specs a/b/e m:f\n")
    with pytest.raises(SpecgenError, match="5 fields") as exc:
        lock.read(path)
    assert exc.value.line == 6


def _module(tmp_path: Path, text: str):
    path = tmp_path / "mod.py"
    path.write_text(text)
    return read_module("mod", path)


def test_registry_reads_literals_constants_and_flags_the_rest(tmp_path):
    mod, issues = _module(
        tmp_path,
        (
            "from specgen import check as bind\nimport pytest\nCAP = 'cap'\nCAP2 = 'x'\nCAP2 = 'y'\n\n"
            "@bind(CAP, 'Req', 'Scn')\n@pytest.mark.parametrize('v', [1])\ndef check_a(v):\n    pass\n\n"
            "@bind('cap/req/scn', manual='m.md')\ndef check_b():\n    ...\n\n"
            "@bind(CAP2, 'Req', 'Scn')\ndef check_c():\n    pass\n\n"
            "@bind(f'{CAP}', 'Req', 'Scn')\ndef check_d():\n    pass\n\n"
            "def check_e():\n    pass\n"
        ),
    )
    assert [(d.func, d.capability, d.target_id, d.manual) for d in mod.checks] == [
        ("check_a", "cap", None, None),
        ("check_b", "cap", "cap/req/scn", "m.md"),
    ]
    assert [(i.code, i.line) for i in issues] == [("bad-check", 16), ("bad-check", 20)]
    assert mod.unbound == (("check_e", 24),)


def test_source_fingerprint_ignores_check_decorator_but_not_parametrize(tmp_path):
    base = (
        "from specgen import check\nimport pytest\n\n@check('a/b/c')\n@pytest.mark.parametrize('v', [1])\n"
        "def check_x(v):\n    assert v\n"
    )
    fp = _module(tmp_path, base)[0].checks[0].source_fingerprint
    assert _module(tmp_path, base.replace("'a/b/c'", "'a/b/d'"))[0].checks[0].source_fingerprint == fp
    assert _module(tmp_path, base.replace("[1]", "[1, 2]"))[0].checks[0].source_fingerprint != fp
    assert _module(tmp_path, base.replace("assert v", "assert not v"))[0].checks[0].source_fingerprint != fp


def test_config_errors_name_the_dotted_key(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.specgen]\nchecks = "tests.checks"\noutput = 3\n')
    with pytest.raises(SpecgenError, match=r"tool\.specgen\.output: expected a non-empty path"):
        load_config(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.specgen]\nchecks = "tests.checks"\n')
    assert load_config(tmp_path).checks == ("tests.checks",)


def test_evidence_latest_record_decides(tmp_path):
    ev = tmp_path / "evidence"
    ev.mkdir()
    (ev / "a.yaml").write_text(manual.render_record("a/b/c", "f1", "fail", "Ada", "2025-01-01T00:00:00Z", "abc"))
    (ev / "b.yaml").write_text(manual.render_record("a/b/c", "f1", "pass", "Ada", "2025-02-01T00:00:00Z", "abd"))
    records = manual.read_evidence(ev)
    assert manual.status(records["a/b/c"], "f1")[0] == manual.FRESH
    assert manual.status(records["a/b/c"], "f2")[0] == manual.STALE
    assert manual.status(None, "f1")[0] == manual.NONE
    (ev / "c.yaml").write_text("scenario: a/b/c\nresult: maybe\n")
    with pytest.raises(SpecgenError, match="lacks fingerprint"):
        manual.read_evidence(ev)
