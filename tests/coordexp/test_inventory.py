"""Unit tests for the inventory gate's CLI and edge cases."""

from __future__ import annotations

from tests.helpers.tools import load_tool

inventory = load_tool("inventory")


def test_cli_exit_codes(tmp_path, capsys):
    (tmp_path / "ok.py").write_text("x = 1\n")
    assert inventory.main([str(tmp_path)]) == 0
    (tmp_path / "bad.py").write_text("import json\ny = json.loads(input())\n")
    assert inventory.main([str(tmp_path)]) == 1
    assert f"{tmp_path / 'bad.py'}:2: json-load:" in capsys.readouterr().out
    assert inventory.main([str(tmp_path / "missing")]) == 2
    assert inventory.main(["--help"]) == 2


def test_decoder_passed_as_value_and_msgspec_are_caught():
    src = "import json\nimport msgspec\n\nrows = list(map(json.loads, open('f')))\nobj = msgspec.json.decode(b'{}')\n"
    assert [(f.rule, f.line) for f in inventory.scan_source(src)] == [("json-load", 4), ("json-load", 5)]


def test_any_decoding_without_a_pragma_is_caught():
    src = (
        "import json\nfrom coordexp.format.coordjson import parse\n\ndef f(t, fo):\n"
        "    s = str(parse(t, 'salvage', fo).objects)\n    return json.loads(s)\n"
    )
    assert [f.rule for f in inventory.scan_source(src)] == ["json-load"]


def test_docstrings_are_prose_not_keys():
    assert inventory.scan_source('"""The object_N format is retired."""\n') == []


def test_syntax_error_is_a_finding():
    assert [f.rule for f in inventory.scan_source("def (:\n")] == ["syntax"]


def test_pragma_on_line_above_and_div1000():
    src = "# inventory: div1000-ok(milliseconds to seconds)\nsecs = ms / 1000\nbad = k / 1000.0\n"
    assert [(f.rule, f.line) for f in inventory.scan_source(src)] == [("div-1000", 3)]
