"""Checks for capability `rollout-server-contract`, the request side: our `/infer/` requests, request config,
seeds, chunking, response validation, retries and prompt alignment, pinned against ms-swift 4.6.0's own types and
exercised against a local HTTP server (no vLLM, no GPU). The server's side is in rollout_server_side.py."""

from __future__ import annotations

import pydantic
import pytest
from PIL import Image

from coordexp.generation.chunking import ChunkingError, chunks, per_rank_chunk
from coordexp.generation.client import RolloutClient, RolloutContractError
from coordexp.generation.request import (
    DecodeSettings,
    RequestBuildError,
    from_messages,
    request_config,
    seed_base,
)
from coordexp.generation.response import RolloutResponseError, parse_infer_response
from coordexp.stage2.alignment import PromptMismatchError
from coordexp.stage2.channel_b import ChannelBTarget, teacher_forced_row
from specgen import check
from tests.helpers import swift_oracle as oracle
from tests.helpers.fake_rollout_server import FakeRolloutServer, ok_item
from tests.helpers.launcher_fixtures import SERVER_SMOKE
from tests.helpers.tiny_rollout import serving, tiny

CAP = "rollout-server-contract"
# Why the retry checks run off the entrypoints (reach_exception).
NETWORK_FAULTS = (
    "network failures (a dropped connection, a 5xx, an error object) come from a fault-injecting fake server; "
    "no command of ours makes the rollout server fail mid-request"
)
S = DecodeSettings(max_tokens=16, temperature=0.0, top_p=1.0, top_k=-1, repetition_penalty=1.1)


def chat(system, user, images):
    """A request as production builds it (``from_messages``, as ``stage2.trainer.prepare_samples``)."""
    content = [{"type": "image", "image": p} for p in images] + [{"type": "text", "text": user}]
    return from_messages([{"role": "system", "content": system}, {"role": "user", "content": content}])


def reqs(n):
    return [chat("You detect objects.", f"q{i}", [f"/data/img{i}.jpg"]) for i in range(n)]


# ---------------------------------------------------------------- Infer Request Payload


@check(CAP, "Infer Request Payload", "Request validates as RolloutInferRequest")
def check_request_validates_as_rollout_infer_request():
    from coordexp.format.template import build_messages

    # the Channel-B request of a record, built as stage2.trainer.prepare_samples builds it
    rec = {"images": ["/data/a.jpg"], "width": 64, "height": 64, "objects": []}
    r = from_messages(build_messages(rec, field_order="desc_first", with_assistant=False))
    parsed = oracle.validate_infer_request(r)
    assert isinstance(parsed.messages[0]["content"], str) and parsed.messages[0]["role"] == "system"
    assert parsed.messages[1]["content"][0] == {"type": "image", "image": "/data/a.jpg"}
    assert parsed.messages[1]["content"][-1]["type"] == "text"


@check(CAP, "Infer Request Payload", "PIL images are refused")
@pytest.mark.reach_exception(
    "a PIL image reaches request building only from Python: every command reads image paths from JSONL"
)
def check_pil_images_are_refused():
    img = Image.new("RGB", (4, 4))
    with pytest.raises(RequestBuildError, match=r"sample: Image object .*image paths as strings"):
        chat("s", "u", [img])
    with pytest.raises(pydantic.ValidationError):
        oracle.validate_infer_request({"messages": [{"role": "user", "content": "u"}], "images": [img]})


@check(CAP, "Infer Request Payload", "Tuples become lists and assistant turns are dropped")
def check_tuples_become_lists_and_assistant_turns_are_dropped():
    msgs = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": ({"type": "image", "image": "/i.jpg"}, {"type": "text", "text": "u"})},
        {"role": "assistant", "content": [{"type": "text", "text": '{"objects": []}'}]},
    ]
    r = from_messages(msgs)
    assert r["messages"][-1]["role"] == "user" and isinstance(r["messages"][-1]["content"], list)
    oracle.validate_infer_request(r)


# ---------------------------------------------------------------- Request Config


@check(CAP, "Request Config", "Config matches RequestConfig")
def check_config_matches_request_config():
    # the request config the client really POSTs (RolloutClient.infer), validated by ms-swift's RequestConfig
    with FakeRolloutServer() as srv:
        RolloutClient(srv.url, timeout_s=5).infer(reqs(1), S, seed_base=12345)
    cfg = srv.bodies[0]["request_config"]
    assert set(cfg) == set(oracle.request_config_fields())
    rc = oracle.validate_request_config(cfg)
    assert rc.return_details is True and rc.stop == ["<|im_end|>"] and rc.n == 1
    assert (rc.top_k, rc.repetition_penalty, rc.max_tokens, rc.seed) == (-1, 1.1, 16, 12345)


# ---------------------------------------------------------------- Nonzero Rollout Seeds


@check(CAP, "Nonzero Rollout Seeds", "Seed zero maps to one")
def check_seed_zero_maps_to_one():
    assert seed_base(2**31 - 5 * 1000003, 5) == 1
    assert seed_base(0, 0) == 1
    with pytest.raises(RequestBuildError):
        request_config(S, 0)


@check(CAP, "Nonzero Rollout Seeds", "Seeds follow the request position")
@pytest.mark.reach_exception("the seeds of a batch split after failed retries: " + NETWORK_FAULTS)
def check_seeds_follow_the_request_position():
    with FakeRolloutServer(script=["500", "500"]) as srv:
        RolloutClient(srv.url, timeout_s=5).infer(reqs(4), S, seed_base=100)
    assert [(len(b["infer_requests"]), b["request_config"]["seed"]) for b in srv.bodies] == [
        (4, 100),
        (4, 100),
        (2, 100),
        (2, 102),
    ]


# ---------------------------------------------------------------- Chunking By Server World Size


@check(CAP, "Chunking By Server World Size", "Per-rank chunk formula")
def check_per_rank_chunk_formula():
    assert per_rank_chunk(8, 4, 3) == 10
    assert chunks(5, 2) == [(0, 2), (2, 4), (4, 5)]


@check(CAP, "Chunking By Server World Size", "Infeasible chunking is an error")
def check_infeasible_chunking_is_an_error():
    with pytest.raises(ChunkingError, match=r"decode_batch_size.*at least 2"):
        per_rank_chunk(1, 2, 3)


@check(CAP, "Chunking By Server World Size", "The learner asks the server for its world size")
def check_the_learner_asks_the_server_for_its_world_size():
    from coordexp.config import load_config
    from coordexp.stage2.trainer import make_backend

    model, tok = tiny()
    cfg = load_config(SERVER_SMOKE)
    assert (cfg.rollout_matching.decode_batch_size, cfg.world_size) == (2, 1)
    server = cfg.rollout_matching.vllm.server
    server.timeout_s, server.infer_timeout_s = 7.0, 9.0
    with serving(model, tok, world_size=2, log=lambda m: None) as srv:
        server.servers[0].base_url = srv.url
        backend = make_backend(cfg, None, None)
        try:
            assert backend.chunk_size == 4
            assert (backend.client.base_url, backend.client.timeout_s, backend.client.infer_timeout_s) == (
                srv.url,
                7.0,
                9.0,
            )
        finally:
            backend.close()


# ---------------------------------------------------------------- Response Validation


@check(CAP, "Response Validation", "Wrapped and bare outputs are accepted")
def check_wrapped_and_bare_outputs_are_accepted():
    out = parse_infer_response([ok_item(0, True), ok_item(1, False)], 2)
    assert all(o.prompt_token_ids and o.token_ids for o in out)
    assert oracle.validate_output(ok_item(0, True)).response.prompt_token_ids == out[0].prompt_token_ids


@check(CAP, "Response Validation", "Missing token ids are rejected")
def check_missing_token_ids_are_rejected():
    empty = ok_item(0, False)
    empty["prompt_token_ids"] = []
    with pytest.raises(RolloutResponseError, match="prompt_token_ids.*return_details"):
        parse_infer_response([empty], 1)
    no_ids = ok_item(0, True)
    del no_ids["response"]["choices"][0]["token_ids"]
    with pytest.raises(RolloutResponseError, match="token_ids.*return_details"):
        parse_infer_response([no_ids], 1)


@check(CAP, "Response Validation", "Error objects raise")
def check_error_objects_raise():
    with pytest.raises(RolloutResponseError, match="boom"):
        parse_infer_response([{"object": "error", "message": "boom"}], 1)


# ---------------------------------------------------------------- Retry Covers Network Errors


@check(CAP, "Retry Covers Network Errors", "Dropped connection is retried")
@pytest.mark.reach_exception(NETWORK_FAULTS)
def check_dropped_connection_is_retried():
    with FakeRolloutServer(script=["drop"]) as srv:
        c = RolloutClient(srv.url, timeout_s=5)
        out = c.infer(reqs(3), S, seed_base=1)
    assert len(out) == 3 and c.attempts == 2


@check(CAP, "Retry Covers Network Errors", "Server errors and error objects are retried")
@pytest.mark.reach_exception(NETWORK_FAULTS)
@pytest.mark.parametrize("failure", ["500", "error"])
def check_server_errors_and_error_objects_are_retried(failure):
    with FakeRolloutServer(script=[failure]) as srv:
        c = RolloutClient(srv.url, timeout_s=5)
        out = c.infer(reqs(3), S, seed_base=1)
    assert len(out) == 3 and c.attempts == 2


@check(CAP, "Retry Covers Network Errors", "Persistent failure splits the batch")
@pytest.mark.reach_exception(NETWORK_FAULTS)
def check_persistent_failure_splits_the_batch():
    with FakeRolloutServer(script=["drop", "500"]) as srv:
        c = RolloutClient(srv.url, timeout_s=5)
        out = c.infer(reqs(4), S, seed_base=1)
    assert len(out) == 4 and [len(b["infer_requests"]) for b in srv.bodies] == [4, 4, 2, 2]
    assert [b["infer_requests"][0]["messages"][1]["content"][1]["text"] for b in srv.bodies[2:]] == ["q0", "q2"]


@check(CAP, "Retry Covers Network Errors", "Contract errors are not retried")
def check_contract_errors_are_not_retried():
    with FakeRolloutServer(script=["422"]) as srv:
        c = RolloutClient(srv.url, timeout_s=5)
        with pytest.raises(RolloutContractError, match="422"):
            c.infer(reqs(2), S, seed_base=1)
    assert c.attempts == 1 and len(srv.bodies) == 1


# ---------------------------------------------------------------- Learner And Server Prompt Alignment


def _target(assistant_ids):
    return ChannelBTarget(
        assistant_ids=list(assistant_ids),
        ce_weights=[1.0] * len(assistant_ids),
        groups=[],
        prefix=None,
        match=None,
        fragment="]}",
        prefix_len=0,
        closure=(0, 1),
        text="",
    )


@check(CAP, "Learner And Server Prompt Alignment", "Equal prompt ids pass")
def check_equal_prompt_ids_pass():
    row = teacher_forced_row([1, 2, 3], [1, 2, 3], _target([7, 8]))
    assert row.input_ids == [1, 2, 3, 7, 8] and row.labels == [-100, -100, -100, 7, 8] and row.prompt_len == 3


@check(CAP, "Learner And Server Prompt Alignment", "Mismatch raises with its location")
def check_mismatch_raises_with_its_location():
    with pytest.raises(PromptMismatchError, match=r"learner has 3.*server has 3.*index 1"):
        teacher_forced_row([1, 2, 3], [1, 9, 3], _target([7]))
    with pytest.raises(PromptMismatchError, match=r"learner has 3.*server has 4"):
        teacher_forced_row([1, 2, 3], [1, 2, 3, 4], _target([7]))
