"""Unit tests for coordexp.training.packing internals (no model)."""

import random

import pytest
import torch

from coordexp.training.packing import (
    PackingError,
    PackingPolicy,
    _MaxTree,
    collate_packed,
    first_fit_decreasing,
    plan_packs,
    segment_position_ids,
)
from tests.coordexp.segments import TinySegment


def test_max_tree_finds_leftmost_fit():
    t = _MaxTree(5, 10)
    t.add(0, -8)  # slot 0 has 2 left
    t.add(1, -3)  # slot 1 has 7 left
    assert t.leftmost_at_least(2) == 0
    assert t.leftmost_at_least(3) == 1
    assert t.leftmost_at_least(8) == 2
    assert t.leftmost_at_least(11) == -1


def test_ffd_matches_a_naive_first_fit_decreasing():
    r = random.Random(3)
    lengths = [r.randint(1, 100) for _ in range(300)]
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    naive: list[list[int]] = []
    for i in order:
        for b in naive:
            if sum(lengths[j] for j in b) + lengths[i] <= 100:
                b.append(i)
                break
        else:
            naive.append([i])
    assert first_fit_decreasing(lengths, 100) == naive


def test_empty_sample_is_an_error_naming_it():
    with pytest.raises(PackingError, match="sample 1"):
        plan_packs([3, 0, 2], PackingPolicy(packing_length=10))


def test_everything_truncated_is_an_error_not_an_empty_plan():
    with pytest.raises(PackingError, match="no pack left"):
        plan_packs([6, 6, 6], PackingPolicy(packing_length=10, world_size=4, drop_last=True))


@pytest.mark.parametrize(
    "kw",
    [{"packing_length": 0}, {"packing_length": 10, "min_fill_ratio": 1.5}, {"packing_length": 10, "world_size": 0}],
)
def test_policy_validation(kw):
    with pytest.raises(PackingError):
        PackingPolicy(**kw)


def test_fill_ratio_counts_single_long_capacity_as_its_length():
    rep = plan_packs([5, 20], PackingPolicy(packing_length=10)).report
    assert rep.capacity_tokens == 30 and rep.fill_ratio == round(25 / 30, 6)


def test_text_only_positions_are_four_identical_rows():
    pos = segment_position_ids([1, 2, 3, 4], None)
    assert pos.tolist() == [[0, 1, 2, 3]] * 4


def test_collate_rejects_misaligned_segment():
    with pytest.raises(PackingError, match="segment 0"):
        collate_packed([TinySegment([1, 2, 3], [-100, 2])])


def test_image_without_pixels_is_an_error():
    seg = TinySegment([1, 151652, 151655, 151653, 5], [-100] * 4 + [5], None, torch.tensor([[1, 2, 2]]))
    with pytest.raises(PackingError, match="pixel_values"):
        collate_packed([seg])
