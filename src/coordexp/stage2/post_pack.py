"""Stage-2 post-rollout packing: channel-local FIFO buffers of teacher-forced segments.

- One buffer per channel: A and B segments are never packed together.
- ``capacity`` (``training.packing_buffer``) caps the total occupancy of all buffers in
  segments. ``add`` refuses an overflow, or a segment longer than ``packing_length``, with
  an error and *without* changing any buffer (all-or-nothing).
- ``select`` (per packed forward, from one channel's buffer):
  * the oldest segment is always in the pack (no segment starves);
  * candidate 1: greedy FIFO fill of the remaining capacity, in arrival order;
  * candidate 2: bin-pack the remaining capacity (first-fit decreasing over the other
    segments that fit) and take the best bin: most tokens, then fewer segments, then the
    lexicographically smallest buffer indices;
  * candidate 2 is used only if its total is strictly larger than candidate 1's.
  The chosen segments leave the buffer; the others keep their order.
- Low fill is only reported (``fill``), never a reason to wait or drop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from coordexp.errors import CoordExpError
from coordexp.stage2.schedule import CHANNEL_A, CHANNEL_B
from coordexp.training.packing import first_fit_decreasing


class PostPackError(CoordExpError, ValueError):
    """A segment cannot enter the post-rollout buffers."""


@dataclass
class Selection:
    indices: tuple[int, ...]  # buffer indices, ascending
    tokens: int
    strategy: str  # "fifo" or "binpack"


def choose(lengths, capacity: int) -> Selection:
    """The pack for a buffer holding segments of ``lengths`` (index 0 is the oldest)."""
    if not lengths:
        raise PostPackError("cannot select from an empty buffer")
    if lengths[0] > capacity:
        raise PostPackError(f"the oldest segment has {lengths[0]} tokens > packing_length {capacity}")
    room = capacity - lengths[0]
    fifo, used = [0], lengths[0]
    for i in range(1, len(lengths)):
        if used + lengths[i] <= capacity:
            fifo.append(i)
            used += lengths[i]
    rest = [i for i in range(1, len(lengths)) if lengths[i] <= room]
    best: tuple | None = None
    if rest and room > 0:
        for b in first_fit_decreasing([lengths[i] for i in rest], room):
            idx = tuple(sorted(rest[j] for j in b))
            key = (-sum(lengths[i] for i in idx), len(idx), idx)
            if best is None or key < best:
                best = key
    if best is not None and lengths[0] - best[0] > used:
        idx = (0, *best[2])
        return Selection(idx, lengths[0] - best[0], "binpack")
    return Selection(tuple(fifo), used, "fifo")


@dataclass
class PostRolloutBuffers:
    packing_length: int
    capacity: int  # total segments over both channels
    _buf: dict = field(default_factory=lambda: {CHANNEL_A: [], CHANNEL_B: []})

    def __post_init__(self):
        if self.packing_length < 1 or self.capacity < 1:
            raise PostPackError(
                f"packing_length and packing_buffer must be >= 1, got {self.packing_length}, {self.capacity}"
            )

    @property
    def occupancy(self) -> int:
        return sum(len(b) for b in self._buf.values())

    def add(self, channel: str, segments) -> None:
        """Append ``segments`` to ``channel``'s buffer; all or nothing."""
        if channel not in self._buf:
            raise PostPackError(f"unknown channel {channel!r}")
        segments = list(segments)
        for s in segments:
            if getattr(s, "channel", channel) != channel:
                raise PostPackError(
                    f"{s.sample}: a Channel-{s.channel} segment offered to the Channel-{channel} "
                    "buffer: A and B are never mixed"
                )
            if len(s) > self.packing_length:
                raise PostPackError(
                    f"{getattr(s, 'sample', 'segment')}: {len(s)} tokens > packing_length "
                    f"{self.packing_length} (global_max_length); shorten the sample or raise it"
                )
        if self.occupancy + len(segments) > self.capacity:
            raise PostPackError(
                f"post-rollout buffer overflow: {self.occupancy} + {len(segments)} segments > "
                f"training.packing_buffer {self.capacity}; raise packing_buffer to at least the "
                "per-rank raw budget (effective_batch_size / world)"
            )
        self._buf[channel].extend(segments)

    def pop_pack(self, channel: str):
        """(segments, Selection) of the next packed forward of ``channel``."""
        buf = self._buf[channel]
        sel = choose([len(s) for s in buf], self.packing_length)
        chosen = [buf[i] for i in sel.indices]
        keep = set(sel.indices)
        self._buf[channel] = [s for i, s in enumerate(buf) if i not in keep]
        return chosen, sel

    def drain(self, channel: str):
        """Every pack of ``channel`` until its buffer is empty."""
        while self._buf[channel]:
            yield self.pop_pack(channel)
