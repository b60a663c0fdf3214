import pytest

from coordexp.stage2.metrics import StepMetrics, reduce_ranks, rule


def test_rules():
    assert rule("loss/bbox_ciou") == "mean" and rule("rollout/f1") == "mean"
    assert rule("stage2/raw_rollouts") == "sum" and rule("time/forward_s") == "sum"
    assert rule("rollout/parse_truncated") == "sum" and rule("rollout/parse_truncated_rate") == "ratio"


def test_within_step_weighted_means_and_sums():
    m = StepMetrics("B")
    m.add({"loss/bbox_ciou": 1.0, "stage2/raw_rollouts": 2, "rollout/parse_truncated": 1,
           "time/rollout_generate_s": 3.0}, segments=1)
    m.add({"loss/bbox_ciou": 4.0, "stage2/raw_rollouts": 3, "rollout/parse_truncated": 0,
           "time/rollout_generate_s": 1.0}, segments=3)
    out = m.finalize()
    assert out["loss/bbox_ciou"] == pytest.approx((1 + 12) / 4)
    assert out["stage2/raw_rollouts"] == 5 and out["time/rollout_generate_s"] == 4.0
    assert out["rollout/parse_truncated_rate"] == pytest.approx(1 / 5)
    assert out["stage2/channel_b"] == 1.0 and out["stage2/channel_a"] == 0.0


def test_a_step_refuses_rollout_time():
    m = StepMetrics("A")
    with pytest.raises(ValueError, match="time/rollout_"):
        m.add({"time/rollout_generate_s": 0.0}, segments=1)
    m.add({"time/forward_s": 1.0, "time/channel_a_pack_s": 0.1}, segments=2)
    assert not any(k.startswith("time/rollout_") for k in m.finalize())


def test_across_ranks():
    r0 = StepMetrics("B")
    r0.add({"loss/x": 1.0, "stage2/raw_rollouts": 1, "rollout/parse_truncated": 1, "time/forward_s": 2.0,
            "rollout/backend_vllm": 1.0}, segments=1)
    r1 = StepMetrics("B")
    r1.add({"loss/x": 3.0, "stage2/raw_rollouts": 3, "rollout/parse_truncated": 0, "time/forward_s": 5.0,
            "rollout/backend_vllm": 1.0, "loss/only_here": 7.0}, segments=3)
    out = reduce_ranks([r0.finalize(), r1.finalize()])
    assert out["loss/x"] == pytest.approx((1 + 9) / 4)
    assert out["stage2/raw_rollouts"] == 4 and out["time/forward_s"] == 5.0
    assert out["rollout/parse_truncated_rate"] == pytest.approx(0.25)
    assert out["loss/only_here"] == 7.0 and out["rollout/backend_vllm"] == 1.0
    assert "_segments" not in out
