"""Unit tests of coordexp.format.data internals (the spec-level behaviour is in tests/checks/jsonl_contract.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from coordexp.format.data import (
    DataError,
    DataIssue,
    DetObject,
    check_desc,
    decode_line,
    load_records,
    object_anchor,
    order_violations,
    parse_record,
)


def good(**kw):
    rec = {"images": ["images/a.png"], "width": 64, "height": 64, "objects": [{"desc": "cat", "bbox_2d": [1, 2, 3, 4]}]}
    rec.update(kw)
    return rec


def test_anchor_is_topmost_then_leftmost():
    assert object_anchor(DetObject("b", "bbox_2d", (5, 7, 9, 9))) == (7, 5)
    # two vertices share the top y: the left one wins, wherever it sits in the list
    assert object_anchor(DetObject("p", "poly", (30, 4, 10, 4, 20, 50))) == (4, 10)
    objs = [DetObject("a", "bbox_2d", (1, 10, 2, 11)), DetObject("b", "bbox_2d", (0, 10, 2, 11)),
            DetObject("c", "bbox_2d", (0, 10, 3, 11))]
    assert order_violations(objs) == [1]  # equal anchors (b, c) are not a violation


def test_check_desc():
    assert check_desc("dining table") is None
    assert "string" in check_desc(3)
    assert "newline" in check_desc("a\nb")
    assert "carriage" in check_desc("a\rb")
    assert "double space" in check_desc("a  b")


def test_decode_line_strict():
    assert decode_line('{"a": 1}') == {"a": 1}
    for text in ('{"a": NaN}', '{"a": Infinity}', '{"a": 1, "a": 2}'):
        with pytest.raises(ValueError):
            decode_line(text)


def test_poly_points_consistency():
    rec = good(objects=[{"desc": "p", "poly": [1, 2, 30, 2, 30, 40], "poly_points": 3}])
    parts, issues = parse_record(rec, file="f", line=1)
    assert not issues and parts["objects"][0].poly_points == 3
    rec = good(objects=[{"desc": "p", "poly": [1, 2, 30, 2, 30, 40], "poly_points": 4}])
    _, issues = parse_record(rec, file="f", line=1)
    assert [i.where for i in issues] == ["objects[0].poly_points"]
    rec = good(objects=[{"desc": "p", "bbox_2d": [1, 2, 3, 4], "poly_points": 2}])
    _, issues = parse_record(rec, file="f", line=1)
    assert [i.where for i in issues] == ["objects[0].poly_points"]


def test_unknown_object_key_and_non_object():
    _, issues = parse_record(good(objects=[{"desc": "a", "bbox_2d": [1, 2, 3, 4], "score": 1}, 5]), file="f", line=3)
    assert {i.where for i in issues} == {"objects[0].score", "objects[1]"}
    assert all(i.line == 3 for i in issues)
    _, issues = parse_record([1, 2], file="f", line=1)
    assert "JSON object" in issues[0].message


def test_images_field_checks():
    for images in ("a.png", [""], [3]):
        _, issues = parse_record(good(images=images), file="f", line=1)
        assert [i.where for i in issues] == ["images"]
    rec = good()
    del rec["images"]
    assert [i.where for i in parse_record(rec, file="f", line=1)[1]] == ["images"]


def test_check_images_budget_counts_only_valid_rows(tmp_path):
    (tmp_path / "images").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "images" / "a.png")
    lines = [json.dumps(good()), json.dumps(good(width=96))]
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert len(load_records(path, check_images=1)) == 2  # row 2 is not opened
    with pytest.raises(DataError) as exc:
        load_records(path, check_images=2)
    assert [(e.line, e.where) for e in exc.value.errors] == [(2, "images[0]")]
    assert len(load_records(path, check_images=False)) == 2


def test_unreadable_image_and_nested_symlink(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"not a png")
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(good()) + "\n")
    with pytest.raises(DataError) as exc:
        load_records(path)
    assert "cannot open" in exc.value.errors[0].message
    real = tmp_path / "real"
    real.mkdir()
    Image.new("RGB", (64, 64)).save(real / "a.png")
    (tmp_path / "images" / "sub").symlink_to(real, target_is_directory=True)
    path.write_text(json.dumps(good(images=["images/sub/a.png"])) + "\n")
    with pytest.raises(DataError) as exc:
        load_records(path, check_images=False)
    assert "symlink" in exc.value.errors[0].message


def test_missing_file_and_bad_arguments(tmp_path):
    with pytest.raises(DataError) as exc:
        load_records(tmp_path / "none.jsonl")
    assert exc.value.errors == [DataIssue(str(tmp_path / "none.jsonl"), 0, "", "JSONL file not found")]
    with pytest.raises(ValueError):
        load_records(tmp_path / "none.jsonl", stage="stage3")
    with pytest.raises(ValueError):
        load_records(tmp_path / "none.jsonl", object_ordering="shuffled")


def test_data_error_message_is_bounded():
    issues = [DataIssue("f", i, "", "bad") for i in range(1, 80)]
    text = str(DataError(issues))
    assert text.startswith("79 data errors") and "... and 29 more" in text and len(DataError(issues).errors) == 79


def test_no_trailing_newline_and_crlf(tmp_path):
    (tmp_path / "images").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "images" / "a.png")
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(good()) + "\n" + json.dumps(good()))
    assert len(load_records(path)) == 2
    path.write_bytes((json.dumps(good()) + "\r\n").encode())
    assert len(load_records(path)) == 1  # json.loads tolerates the trailing \r as whitespace
