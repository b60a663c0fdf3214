"""Stage-2 metric keys and how they aggregate (once per optimizer step).

Within a step, across packs (``StepMetrics``):
- means weighted by the pack's segment count: ``loss/*``, ``rollout/*``, ``coord_diag/*``,
  ``stage2/channel_a``, ``stage2/channel_b``, ``stage2_ab/b_ratio_realized``,
  ``packing/post_rollout_fill``;
- sums: everything else (counters, ``time/*``), plus the counters that live under
  ``rollout/`` (``COUNTER_KEYS``);
- ratios recomputed from summed parts: ``rollout/parse_truncated_rate`` =
  sum ``rollout/parse_truncated`` / sum ``stage2/raw_rollouts`` (a mean of per-pack rates
  would weight a small pack like a large one).
Across DDP ranks (``reduce_ranks``): counters summed; ``time/*`` and the backend/mode
flags take the max; means weighted by the global segment total; the key set is the
union over ranks (a key absent on a rank contributes no weight there); ratios recomputed.

``time/rollout_*`` exists only when rollouts ran: a Channel-A step must not carry it,
not even as 0 (stage2-ab-training, Stage-2 Metric Aggregation); ``StepMetrics`` refuses it on A steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from coordexp.stage2.schedule import CHANNEL_A, CHANNEL_B

MEAN_PREFIXES = ("loss/", "rollout/", "coord_diag/")
MEAN_KEYS = frozenset(
    {"stage2/channel_a", "stage2/channel_b", "stage2_ab/b_ratio_realized", "packing/post_rollout_fill"}
)
COUNTER_KEYS = frozenset(
    {"rollout/parse_truncated", "rollout/gating_rejections", "rollout/matched", "rollout/fp", "rollout/fn"}
)
FLAG_KEYS = frozenset(
    {
        "rollout/seed_base",
        "rollout/backend_hf",
        "rollout/backend_vllm",
        "rollout/decode_mode_greedy",
        "rollout/decode_mode_beam",
        "rollout/temperature",
        "rollout/top_p",
        "rollout/top_k",
        "rollout/do_sample",
        "rollout/max_new_tokens",
        "rollout/num_beams",
        "rollout/repetition_penalty",
    }
)
RATIO_KEYS = {"rollout/parse_truncated_rate": ("rollout/parse_truncated", "stage2/raw_rollouts")}
ROLLOUT_TIME_PREFIX = "time/rollout_"
B_ONLY_TIME_KEYS = ("time/rollout_generate_s", "time/rollout_parse_match_s", "time/rollout_teacher_encode_s")
A_ONLY_TIME_KEYS = ("time/channel_a_teacher_encode_s", "time/channel_a_pack_s")


def rule(key: str) -> str:
    """How ``key`` aggregates within a step: "ratio", "sum" or "mean"."""
    if key in RATIO_KEYS:
        return "ratio"
    if key in COUNTER_KEYS:
        return "sum"
    if key in MEAN_KEYS or key.startswith(MEAN_PREFIXES):
        return "mean"
    return "sum"


def rank_rule(key: str) -> str:
    """How ``key`` aggregates across ranks: "ratio", "max", "sum" or "mean"."""
    if key in RATIO_KEYS:
        return "ratio"
    if key.startswith("time/") or key in FLAG_KEYS:
        return "max"
    return rule(key)


def channel_flags(channel: str) -> dict[str, float]:
    if channel not in (CHANNEL_A, CHANNEL_B):
        raise ValueError(f"channel must be {CHANNEL_A!r} or {CHANNEL_B!r}, got {channel!r}")
    return {"stage2/channel_a": float(channel == CHANNEL_A), "stage2/channel_b": float(channel == CHANNEL_B)}


@dataclass
class StepMetrics:
    """Accumulates one optimizer step's per-pack metrics on one rank."""

    channel: str
    _sums: dict[str, float] = field(default_factory=dict)
    _weights: dict[str, float] = field(default_factory=dict)
    segments: int = 0

    def __post_init__(self):
        channel_flags(self.channel)

    def add(self, metrics: dict[str, float], segments: int) -> None:
        if isinstance(segments, bool) or not isinstance(segments, int) or segments < 1:
            raise ValueError(f"a pack has >= 1 segments, got {segments!r}")
        if self.channel == CHANNEL_A:
            bad = sorted(k for k in metrics if k.startswith(ROLLOUT_TIME_PREFIX) or k in B_ONLY_TIME_KEYS)
            if bad:
                raise ValueError(
                    f"Channel-A step carries rollout timings {bad}: time/rollout_* is emitted only "
                    "when rollouts ran (never as 0 on A steps)"
                )
        if self.channel == CHANNEL_B:
            bad = sorted(k for k in metrics if k in A_ONLY_TIME_KEYS)
            if bad:
                raise ValueError(f"Channel-B step carries Channel-A timings {bad}")
        self.segments += segments
        for k, v in metrics.items():
            v = float(v)
            if rule(k) == "mean":
                self._sums[k] = self._sums.get(k, 0.0) + v * segments
                self._weights[k] = self._weights.get(k, 0.0) + segments
            else:
                self._sums[k] = self._sums.get(k, 0.0) + v

    def finalize(self) -> dict[str, float]:
        """This rank's step metrics: means divided by their segment weight, sums as is,
        ratios from their parts; the channel flags always present."""
        out = dict(channel_flags(self.channel))
        for k, v in self._sums.items():
            out[k] = v / self._weights[k] if rule(k) == "mean" else v
        out.update(channel_flags(self.channel))
        _ratios(out)
        out["_segments"] = float(self.segments)
        return dict(sorted(out.items()))


def _ratios(out: dict[str, float]) -> None:
    for key, (num, den) in RATIO_KEYS.items():
        if den in out and out[den] > 0:
            out[key] = out.get(num, 0.0) / out[den]
        else:
            out.pop(key, None)


def reduce_ranks(per_rank: list[dict[str, float]]) -> dict[str, float]:
    """Combine the finalized step metrics of every rank (as gathered by all_gather_object)."""
    if not per_rank:
        raise ValueError("no rank metrics to reduce")
    keys = sorted(set().union(*per_rank) - {"_segments"})
    out: dict[str, float] = {}
    for k in keys:
        have = [m for m in per_rank if k in m]
        r = rank_rule(k)
        if r == "max":
            out[k] = max(m[k] for m in have)
        elif r == "mean":
            w = sum(m["_segments"] for m in have)
            out[k] = sum(m[k] * m["_segments"] for m in have) / w if w else 0.0
        elif r == "sum":
            out[k] = sum(m[k] for m in have)
    _ratios(out)
    return dict(sorted(out.items()))
