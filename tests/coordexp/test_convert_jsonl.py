"""The offline pixel -> norm1000 converter (scripts/tools/convert_jsonl.py) writes contract records."""

import json
import sys
from pathlib import Path

from coordexp.format.data import load_records

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "tools"))
import convert_jsonl  # noqa: E402


def test_converter_quantizes_canonicalizes_sorts_and_counts(tmp_path):
    from PIL import Image

    Image.new("RGB", (10, 10)).save(tmp_path / "a.png")
    rec = {
        "images": ["a.png"],
        "width": 10,
        "height": 10,
        "objects": [
            {"desc": "ccw", "poly": [9, 9, 0, 9, 0, 0, 9, 0, 9, 9]},  # counter-clockwise, closing point repeated
            {"desc": "line", "poly": [0, 5, 4.5, 5, 9, 5]},  # zero area after rounding -> extent bbox
            {"desc": "box", "bbox_2d": [4.5, 0, 9, 9]},
            {"desc": "bad", "bbox_2d": [9, 0, 5, 5]},  # inverted: dropped and counted
        ],
    }
    src, dst = tmp_path / "px.jsonl", tmp_path / "out.coord.jsonl"
    src.write_text(json.dumps(rec) + "\n")
    counts = convert_jsonl.convert(src, dst)
    assert counts == {"records": 1, "objects_dropped_invalid_bbox": 1, "objects_dropped_invalid_poly": 0}
    (loaded,) = load_records(dst, multiple_of=None)  # sorted order is checked by the loader
    got = [(o.desc, o.geometry, o.values) for o in loaded.objects]
    assert got == [
        ("ccw", "poly", (0, 0, 999, 0, 999, 999, 0, 999)),
        ("box", "bbox_2d", (499, 0, 999, 999)),
        ("line", "bbox_2d", (0, 555, 999, 555)),
    ]


def test_bad_line_is_one_error_and_exit_2(tmp_path, capsys):
    src = tmp_path / "px.jsonl"
    src.write_text("{not json\n")
    assert convert_jsonl.main([str(src), str(tmp_path / "o.jsonl")]) == 2
    assert f"{src}:1: invalid JSON" in capsys.readouterr().err
