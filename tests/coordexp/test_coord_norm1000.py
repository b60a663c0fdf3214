"""Unit tests for the norm1000 part of coordexp.format.coord (pure: no tokenizer)."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest

from coordexp.format.coord import (
    bbox_to_norm1000,
    canonicalize_poly,
    norm1000_to_pixel,
    point_to_norm1000,
    poly_to_norm1000,
)


@pytest.mark.parametrize("seed", range(30))
def test_bbox_properties(seed):
    rng = random.Random(seed)
    w, h = rng.randint(1, 2000), rng.randint(1, 2000)
    x1, x2 = sorted(rng.uniform(0, w - 1) for _ in range(2))
    y1, y2 = sorted(rng.uniform(0, h - 1) for _ in range(2))
    k = bbox_to_norm1000([x1, y1, x2, y2], w, h)
    assert all(isinstance(v, int) for v in k)
    assert 0 <= k[0] < k[2] <= 999 and 0 <= k[1] < k[3] <= 999
    # the bin box covers the pixel box (floor/ceil), unless the strict-box repair moved k1 at 999
    dx, dy = max(1, w - 1), max(1, h - 1)
    if k[0] != 998 or k[2] != 999:
        assert Fraction(k[0]) <= 999 * Fraction(x1) / dx and Fraction(k[2]) >= 999 * Fraction(x2) / dx
    if k[1] != 998 or k[3] != 999:
        assert Fraction(k[1]) <= 999 * Fraction(y1) / dy and Fraction(k[3]) >= 999 * Fraction(y2) / dy


def test_exact_arithmetic_no_float_drift():
    # 999 * 0.3 / 0.3-ish denominators: float math gives 299.69999999999993 style values at
    # exact boundaries; exact arithmetic keeps floor(999*v/d) == k at v = k*d/999.
    for w in (10, 101, 641, 1281):
        d = w - 1
        for k in range(0, 1000, 37):
            v = Fraction(k * d, 999)
            if v.denominator == 1:
                assert bbox_to_norm1000([int(v), 0, int(v), 0], w, 2)[0] == min(k, 998)


def test_point_round_half_even_and_errors():
    assert point_to_norm1000(0.5, 2) == 500  # 499.5 -> 500 (even)
    assert point_to_norm1000(1.5, 10) == 166  # 166.5 -> 166 (even)
    with pytest.raises(ValueError):
        point_to_norm1000(-1, 10)
    with pytest.raises(ValueError):
        point_to_norm1000(True, 10)
    with pytest.raises(ValueError, match="positive int"):
        point_to_norm1000(1, 0)


def test_pixel_round_trip_within_half_bin():
    for w in (32, 640, 1280):
        for k in range(1000):
            px = norm1000_to_pixel(k, w)
            assert 0 <= px <= w - 1
            assert abs(point_to_norm1000(px, w) - k) <= math.ceil(999 / (2 * (w - 1)))


def test_canonicalize_poly_rotations_and_directions_agree():
    square = [0, 0, 10, 0, 10, 10, 0, 10]
    pts = [square[i : i + 2] for i in range(0, 8, 2)]
    for r in range(4):
        rot = pts[r:] + pts[:r]
        for seq in (rot, rot[::-1]):
            assert canonicalize_poly([v for p in seq for v in p]) == square


def test_poly_to_norm1000_arity():
    with pytest.raises(ValueError, match="even"):
        poly_to_norm1000([1, 2, 3, 4, 5], 10, 10)
    with pytest.raises(ValueError, match="even"):
        poly_to_norm1000([1, 2, 3, 4], 10, 10)
