import pytest

from coordexp.generation.client import RolloutClient, RolloutClientError, RolloutContractError
from coordexp.generation.request import DecodeSettings, call_seed
from tests.helpers.fake_rollout_server import PROMPT_IDS, FakeRolloutServer
from tests.helpers.tiny_rollout import chat_request

S = DecodeSettings(max_tokens=16)


def reqs(n):
    return [chat_request("sys", f"q{i}", [f"/img/{i}.jpg"]) for i in range(n)]


def test_health_and_world_size():
    with FakeRolloutServer(world_size=3) as srv:
        c = RolloutClient(srv.url, timeout_s=5)
        assert c.health() and c.world_size() == 3
    assert not RolloutClient(srv.url, timeout_s=1).health()  # server gone: False, no exception


@pytest.mark.parametrize("wrap", [True, False])
def test_ok_and_body(wrap):
    with FakeRolloutServer(wrap=wrap) as srv:
        c = RolloutClient(srv.url, timeout_s=5)
        out = c.infer(reqs(3), S, seed_base=7, request_offset=10)
        assert [o.prompt_token_ids for o in out] == [PROMPT_IDS] * 3 and out[0].token_ids[-1] == 151645
        body = srv.bodies[0]
        cfg = body["request_config"]
        assert cfg["return_details"] is True and cfg["stop"] == ["<|im_end|>"] and cfg["n"] == 1
        assert cfg["seed"] == call_seed(7, 10, 0)
        assert body["infer_requests"][0]["messages"][1]["content"][0] == {"type": "image", "image": "/img/0.jpg"}


@pytest.mark.parametrize("first", ["drop", "500", "error", "bad"])
def test_one_failure_is_retried(first):
    with FakeRolloutServer(script=[first]) as srv:
        c = RolloutClient(srv.url, timeout_s=5)
        out = c.infer(reqs(4), S, seed_base=1)
        assert len(out) == 4 and c.attempts == 2


def test_two_failures_split_the_batch_and_keep_seeds():
    with FakeRolloutServer(script=["drop", "drop"]) as srv:
        c = RolloutClient(srv.url, timeout_s=5)
        out = c.infer(reqs(4), S, seed_base=100)
        assert len(out) == 4 and c.attempts == 4
        sizes = [len(b["infer_requests"]) for b in srv.bodies]
        seeds = [b["request_config"]["seed"] for b in srv.bodies]
        assert sizes == [4, 4, 2, 2] and seeds == [100, 100, 100, 102]


def test_single_request_failing_for_good_raises():
    with FakeRolloutServer(script=["500", "500"]) as srv:
        c = RolloutClient(srv.url, timeout_s=5)
        with pytest.raises(RolloutClientError, match="request 0 failed after a retry"):
            c.infer(reqs(1), S, seed_base=1)


def test_4xx_not_retried():
    with FakeRolloutServer(script=["422"]) as srv:
        c = RolloutClient(srv.url, timeout_s=5)
        with pytest.raises(RolloutContractError, match="HTTP 422"):
            c.infer(reqs(2), S, seed_base=1)
        assert c.attempts == 1


def test_read_timeout_is_retried():
    with FakeRolloutServer(script=["slow"], slow_s=1.5) as srv:
        c = RolloutClient(srv.url, timeout_s=5, infer_timeout_s=0.5)
        assert len(c.infer(reqs(1), S, seed_base=1)) == 1 and c.attempts == 2


def test_chunking():
    with FakeRolloutServer() as srv:
        c = RolloutClient(srv.url, timeout_s=5)
        c.infer(reqs(5), S, seed_base=50, chunk_size=2)
        assert [len(b["infer_requests"]) for b in srv.bodies] == [2, 2, 1]
        assert [b["request_config"]["seed"] for b in srv.bodies] == [50, 52, 54]
