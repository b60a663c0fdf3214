"""Unit tests for coordexp.training.objectives helpers (no model)."""

import torch

from coordexp.training.objectives import count_targets, stage1_loss, stage1_loss_targets, supervised_positions

CS = 300
V = CS + 1000 + 5


def test_supervised_positions_scoring_equals_full_scoring():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 16, V, generator=g)
    labels = torch.full((2, 16), -100)
    labels[0, 5:9] = torch.tensor([1, CS + 3, 2, CS + 999])
    labels[1, 10:14] = torch.tensor([CS, 4, 5, CS + 500])
    full = stage1_loss(logits, labels, coord_start=CS)
    idx = supervised_positions(labels)
    assert idx.tolist() == [4, 5, 6, 7, 9, 10, 11, 12]
    part = stage1_loss_targets(logits[:, idx], labels[:, idx + 1], coord_start=CS)
    assert torch.allclose(full.loss, part.loss)
    kept = stage1_loss(logits[:, idx], labels, positions=idx, coord_start=CS)  # the trainer's logits_to_keep form
    assert torch.allclose(full.loss, kept.loss)
    assert (full.num_text, full.num_coord) == (part.num_text, part.num_coord) == count_targets(labels, CS)


def test_batch_without_coord_targets_keeps_a_graph():
    logits = torch.randn(1, 6, V, requires_grad=True)
    labels = torch.tensor([[-100, -100, 1, 2, 3, 4]])
    out = stage1_loss(logits, labels, coord_start=CS)
    out.loss.backward()
    assert out.num_coord == 0 and logits.grad is not None
