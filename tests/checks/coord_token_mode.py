"""Checks for the coord-token-mode capability: the real Qwen tokenizer and norm1000 conversions."""

from __future__ import annotations

import math

import pytest

from coordexp.format import coord
from coordexp.format.coord import (
    CoordTokenError,
    DoubleNormalizationError,
    assert_pre_quantized,
    bbox_to_norm1000,
    canonicalize_poly,
    coord_token,
    coord_token_ids,
    load_tokenizer,
    norm1000_to_pixel,
    parse_coord_value,
    poly_area2,
    poly_extent_bbox,
    poly_to_norm1000,
)
from coordexp.format.coordjson import render
from specgen import check
from tests.helpers.tools import load_tool

inventory = load_tool("inventory")
CAP = "coord-token-mode"


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


# ---------------------------------------------------------------- Coordinate Vocabulary


@check(CAP, "Coordinate Vocabulary", "1000 contiguous ids")
def check_1000_contiguous_ids(tok):
    ids = coord_token_ids(tok)
    assert ids == list(range(151670, 152670))
    assert tok.convert_tokens_to_ids(coord.COORD_WILDCARD) == 151669
    assert [tok.convert_tokens_to_ids(coord_token(k)) for k in (0, 500, 999)] == [151670, 152170, 152669]
    assert len(tok) == 152670


@check(CAP, "Coordinate Vocabulary", "Each coord is one token")
def check_each_coord_is_one_token(tok):
    ids = set(coord_token_ids(tok))
    for k in (0, 1, 500, 999):
        enc = tok.encode(f"x{coord_token(k)}y", add_special_tokens=False)
        assert [i for i in enc if i in ids] == [151670 + k]


@check(CAP, "Coordinate Vocabulary", "Decode keeps special tokens")
def check_decode_keeps_special_tokens(tok):
    text = render(
        [{"desc": "cat", "bbox_2d": [0, 17, 500, 999]}, {"desc": "dog, big", "poly": [1, 2, 3, 4, 5, 6]}], "desc_first"
    )
    ids = tok.encode(text, add_special_tokens=False)
    full = tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    assert full == text
    pieces = [tok.decode([i], skip_special_tokens=False, clean_up_tokenization_spaces=False) for i in ids]
    assert "".join(pieces) == full
    # the opposite setting loses the coords: the contract is not vacuous
    assert "<|coord_" not in tok.decode(ids, skip_special_tokens=True)


@check(CAP, "Coordinate Vocabulary", "Incomplete vocabulary refused")
def check_incomplete_vocabulary_refused():
    from transformers import AutoTokenizer

    base = AutoTokenizer.from_pretrained(str(coord.qwen_tokenizer_dir()))  # no coord tokens
    with pytest.raises(CoordTokenError, match="1000 coord tokens missing"):
        coord_token_ids(base)
    shuffled = AutoTokenizer.from_pretrained(str(coord.qwen_tokenizer_dir()))
    # adding the block out of order keeps every id distinct but breaks the bin -> id layout
    toks = coord.coord_tokens()
    shuffled.add_special_tokens({"additional_special_tokens": [toks[1], toks[0], *toks[2:]]})
    with pytest.raises(CoordTokenError, match="contiguous"):
        coord_token_ids(shuffled)


# ---------------------------------------------------------------- Coord Value Spelling


@check(CAP, "Coord Value Spelling", "Accepted values")
def check_accepted_values():
    assert [parse_coord_value(v) for v in (0, 999, "<|coord_0|>", "<|coord_999|>")] == [0, 999, 0, 999]


@check(CAP, "Coord Value Spelling", "Rejected values")
@pytest.mark.parametrize(
    "value", [1000, -1, True, 3.0, "<|coord_1000|>", "<|coord_007|>", "<|coord_ 1|>", "coord_1", None]
)
def check_rejected_values(value):
    with pytest.raises(ValueError):
        parse_coord_value(value)


# ---------------------------------------------------------------- Bbox Norm1000 Conversion


@check(CAP, "Bbox Norm1000 Conversion", "Bbox floor and ceil")
def check_bbox_floor_and_ceil():
    assert bbox_to_norm1000([1.5, 2, 3, 4], 10, 10) == [166, 222, 333, 444]
    assert bbox_to_norm1000([0.0001, 0, 8.9999, 9], 10, 10) == [0, 0, 999, 999]


@check(CAP, "Bbox Norm1000 Conversion", "Denominator is extent minus one")
def check_denominator_is_extent_minus_one():
    assert bbox_to_norm1000([0, 0, 639, 479], 640, 480) == [0, 0, 999, 999]
    # W = 1: d = max(1, 0) = 1, no division by zero; y uses H-1 = 9
    assert bbox_to_norm1000([0, 0, 1, 9], 1, 10) == [0, 0, 999, 999]


@check(CAP, "Bbox Norm1000 Conversion", "Out-of-image values clamped")
def check_out_of_image_values_clamped():
    assert bbox_to_norm1000([-5, -5, 700, 500], 640, 480) == [0, 0, 999, 999]


@check(CAP, "Bbox Norm1000 Conversion", "Strict box repair")
def check_strict_box_repair():
    assert bbox_to_norm1000([5, 5, 5, 5], 100, 100) == [50, 50, 51, 51]


@check(CAP, "Bbox Norm1000 Conversion", "Strict box repair at 999")
def check_strict_box_repair_at_999():
    assert bbox_to_norm1000([99, 99, 99, 99], 100, 100) == [998, 998, 999, 999]


@check(CAP, "Bbox Norm1000 Conversion", "Unrepairable box raises")
@pytest.mark.parametrize("bbox", [[10, 0, 5, 5], [0, math.nan, 5, 5], [0, 0, 5], [200, 200, 300, 300]])
def check_unrepairable_box_raises(bbox):
    with pytest.raises(ValueError, match="bbox"):
        bbox_to_norm1000(bbox, 100, 100)


# ---------------------------------------------------------------- Poly Norm1000 Conversion


@check(CAP, "Poly Norm1000 Conversion", "Poly coordinates rounded")
def check_poly_coordinates_rounded():
    assert poly_to_norm1000([0, 0, 4.5, 0, 9, 9], 10, 10) == [0, 0, 500, 0, 999, 999]


@check(CAP, "Poly Norm1000 Conversion", "Poly value outside the grid raises")
def check_poly_value_outside_grid_raises():
    with pytest.raises(ValueError, match="outside 0..999"):
        poly_to_norm1000([0, 0, 10, 0, 5, 5], 10, 10)


@check(CAP, "Poly Norm1000 Conversion", "Poly canonical order")
def check_poly_canonical_order():
    out = canonicalize_poly([10, 10, 0, 10, 0, 0, 10, 0, 10, 10])
    assert out == [0, 0, 10, 0, 10, 10, 0, 10]
    assert canonicalize_poly(out) == out


@check(CAP, "Poly Norm1000 Conversion", "Degenerate poly detected")
def check_degenerate_poly_detected():
    assert poly_area2([0, 0, 5, 5, 10, 10]) == 0
    assert poly_extent_bbox([0, 0, 5, 5, 10, 10]) == [0, 0, 10, 10]
    assert poly_area2([0, 0, 10, 0, 10, 10]) == 100  # a real triangle is not degenerate


# ---------------------------------------------------------------- Inverse Mappings


@check(CAP, "Inverse Mappings", "Bin to pixel")
def check_bin_to_pixel():
    assert [norm1000_to_pixel(k, 640) for k in (0, 500, 999)] == [0, 320, 639]
    assert norm1000_to_pixel("<|coord_999|>", 1) == 0


@check(CAP, "Inverse Mappings", "No /1000 convention")
@pytest.mark.reach_exception(
    "a static scan of the source tree (the inventory gate's div-1000 rule), not a product function"
)
def check_no_div_1000(tmp_path):
    assert [f for f in inventory.scan_tree(inventory.default_root()) if f.rule == "div-1000"] == []
    bad = tmp_path / "src" / "pkg"
    bad.mkdir(parents=True)
    (bad / "geo.py").write_text("def to_unit(k):\n    return k / 1000\n")
    found = inventory.scan_tree(tmp_path / "src")
    assert [(f.rule, f.line) for f in found] == [("div-1000", 2)]


# ---------------------------------------------------------------- No Double Normalization


@check(CAP, "No Double Normalization", "Pixel floats rejected")
def check_pixel_floats_rejected():
    with pytest.raises(DoubleNormalizationError, match=r"objects\[0\]\.bbox_2d\[0\].*offline once"):
        assert_pre_quantized([12.5, 30.0, 100.25, 200.0], "objects[0].bbox_2d")


@check(CAP, "No Double Normalization", "Pixel ints rejected")
def check_pixel_ints_rejected():
    with pytest.raises(DoubleNormalizationError, match=r"geometry\[2\]"):
        assert_pre_quantized([0, 0, 1280, 720])


@check(CAP, "No Double Normalization", "Pre-quantized values pass unchanged")
def check_pre_quantized_values_pass():
    assert assert_pre_quantized(["<|coord_1|>", 2, 998, "<|coord_999|>"]) == [1, 2, 998, 999]
