"""The A/B channel schedule: which optimizer step trains on which channel.

Step s goes to Channel-B iff floor((s+1)*b) > floor(s*b) (a Bresenham line of slope b).
It is a pure function of (s, b): every rank computes the same answer with no randomness
and no communication, a whole gradient-accumulation window shares the step and so the
channel, and a resumed run continues the exact same sequence. Over any n consecutive
steps the B count is within 1 of n*b, so the realized ratio converges at rate 1/n.

b is compared exactly (``fractions.Fraction`` of the float as written): floating point
floor((s+1)*0.85) could flip a step near an integer boundary on some platform.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction

CHANNEL_A = "A"
CHANNEL_B = "B"
REALIZED_WINDOW = 200  # optimizer steps in the b_ratio_realized window (the reference's)


def _ratio(b_ratio) -> Fraction:
    if isinstance(b_ratio, bool) or not isinstance(b_ratio, (int, float, Fraction)):
        raise ValueError(f"stage2_ab.schedule.b_ratio must be a number in [0, 1], got {b_ratio!r}")
    if isinstance(b_ratio, float) and not math.isfinite(b_ratio):
        raise ValueError(f"stage2_ab.schedule.b_ratio must be finite, got {b_ratio!r}")
    b = Fraction(b_ratio) if not isinstance(b_ratio, float) else Fraction(repr(b_ratio))
    if not 0 <= b <= 1:
        raise ValueError(f"stage2_ab.schedule.b_ratio must be in [0, 1], got {b_ratio!r}")
    return b


def _step(global_step) -> int:
    if isinstance(global_step, bool) or not isinstance(global_step, int) or global_step < 0:
        raise ValueError(f"global optimizer step must be an int >= 0, got {global_step!r}")
    return global_step


def is_channel_b(global_step: int, b_ratio) -> bool:
    """True iff optimizer step ``global_step`` (0-based) trains on Channel-B."""
    s, b = _step(global_step), _ratio(b_ratio)
    return math.floor((s + 1) * b) > math.floor(s * b)


def channel_for_step(global_step: int, b_ratio) -> str:
    return CHANNEL_B if is_channel_b(global_step, b_ratio) else CHANNEL_A


def count_b(n_steps: int, b_ratio) -> int:
    """Number of B steps among steps 0..n_steps-1: the sum telescopes to floor(n*b)."""
    return math.floor(_step(n_steps) * _ratio(b_ratio))


@dataclass
class RealizedRatio:
    """Mean of the B flags over the last ``window`` optimizer steps.

    ``record`` must be called once per optimizer step (not per micro-step or pack), with
    the step index; recording the same step twice is refused, so a caller that logs per
    pack cannot over-count. Logged only when 0 < b < 1 (``should_log``).
    """

    window: int = REALIZED_WINDOW
    _flags: deque = field(default_factory=deque, repr=False)
    _last_step: int | None = None

    def __post_init__(self):
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1:
            raise ValueError(f"realized-ratio window must be an int >= 1, got {self.window!r}")

    def record(self, global_step: int, channel_b: bool) -> None:
        s = _step(global_step)
        if self._last_step is not None and s <= self._last_step:
            raise ValueError(
                f"optimizer step {s} recorded after step {self._last_step}: the realized ratio counts "
                "each optimizer step once, in order"
            )
        self._last_step = s
        self._flags.append(bool(channel_b))
        while len(self._flags) > self.window:
            self._flags.popleft()

    @property
    def value(self) -> float | None:
        return sum(self._flags) / len(self._flags) if self._flags else None

    @staticmethod
    def should_log(b_ratio) -> bool:
        b = _ratio(b_ratio)
        return 0 < b < 1
