"""Synthetic encoded samples for the packing and objective checks (a test fixture, not product code).

``synthetic_segment`` draws a sample shaped like an encoded stage-1 sample from a seeded generator, with the
tiny model's image token ids, so collation and the loss can be checked without a tokenizer or images.
"""

from __future__ import annotations

from dataclasses import dataclass

from coordexp.smoke.tiny import IMAGE_TOKEN_ID, VISION_END_TOKEN_ID, VISION_START_TOKEN_ID, TinySpec


@dataclass
class TinySegment:
    """An encoded-sample stand-in with the fields collation reads (see coordexp.training.packing.Segment)."""

    input_ids: list
    labels: list
    pixel_values: object = None
    image_grid_thw: object = None


def synthetic_segment(
    generator,
    *,
    prompt_len: int,
    answer_len: int,
    grid: tuple[int, int, int] | None = None,
    coord_start: int = 151670,
    coord_every: int = 3,
    spec: TinySpec = TinySpec(),  # noqa: B008 (frozen dataclass)
) -> TinySegment:
    """A random sample shaped like an encoded stage-1 sample: an unsupervised prompt (with an image
    block when ``grid`` is given), then a supervised answer mixing text ids and coord ids.

    ``generator`` is a seeded ``torch.Generator``; the result depends only on it and the arguments.
    """
    import torch

    def text(n):
        return torch.randint(0, 150000, (n,), generator=generator).tolist()

    prompt = text(prompt_len)
    pixels = grid_t = None
    if grid is not None:
        t, h, w = grid
        merged = t * h * w // (spec.spatial_merge_size**2)
        prompt = prompt[:1] + [VISION_START_TOKEN_ID] + [IMAGE_TOKEN_ID] * merged + [VISION_END_TOKEN_ID] + prompt[1:]
        dim = 3 * spec.temporal_patch_size * spec.patch_size * spec.patch_size
        pixels = torch.randn(t * h * w, dim, generator=generator)
        grid_t = torch.tensor([list(grid)], dtype=torch.long)
    answer = text(answer_len)
    if coord_every:
        bins = torch.randint(0, 1000, (answer_len,), generator=generator).tolist()
        answer = [
            coord_start + b if i % coord_every == coord_every - 1 else a
            for i, (a, b) in enumerate(zip(answer, bins, strict=True))
        ]
    ids = prompt + answer
    return TinySegment(ids, [-100] * len(prompt) + answer, pixels, grid_t)
