import pytest
from PIL import Image

from coordexp.generation.chunking import ChunkingError, chunks, per_rank_chunk
from coordexp.generation.request import (
    DecodeSettings,
    RequestBuildError,
    call_seed,
    from_messages,
    infer_body,
    norm_seed,
    request_config,
    seed_base,
)
from coordexp.generation.response import RolloutResponseError, parse_infer_response
from coordexp.stage2.alignment import PromptMismatchError, check_prompt_alignment
from tests.helpers import swift_oracle as oracle
from tests.helpers.fake_rollout_server import ok_item
from tests.helpers.tiny_rollout import chat_request


def test_seeds_never_zero():
    assert norm_seed(0) == 1 and norm_seed(2**31) == 1 and norm_seed(-1) == 0x7FFFFFFF
    assert seed_base(42, 0) == 42 and seed_base(42, 2) == 42 + 2 * 1000003
    assert seed_base(-(10 * 1000003), 10) == 1
    assert call_seed(5, 3, 4) == 12
    with pytest.raises(RequestBuildError, match="seed"):
        request_config(DecodeSettings(max_tokens=4), 0)


def test_request_config_matches_swift_fields():
    cfg = request_config(DecodeSettings(max_tokens=8, top_k=-1, repetition_penalty=1.1), 9)
    assert set(cfg) == set(oracle.request_config_fields())
    rc = oracle.validate_request_config(cfg)
    assert rc.return_details is True and rc.stop == ["<|im_end|>"] and rc.seed == 9 and rc.n == 1


def test_request_validates_as_rollout_infer_request_and_pil_refused():
    r = chat_request("system text", "detect", ("/a.jpg",))
    parsed = oracle.validate_infer_request(r)
    assert parsed.messages[0]["content"] == "system text"
    with pytest.raises(RequestBuildError, match="image paths as strings"):
        chat_request("s", "u", [Image.new("RGB", (2, 2))])
    with pytest.raises(RequestBuildError, match="JSON-serializable"):
        infer_body(
            [
                {
                    "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}],
                    "objects": {"x": Image.new("RGB", (2, 2))},
                }
            ],
            {},
        )


def test_from_messages_tuples_become_lists_and_assistant_dropped():
    msgs = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": ({"type": "image", "image": "/i.jpg"}, {"type": "text", "text": "u"})},
        {"role": "assistant", "content": "old"},
    ]
    r = from_messages(msgs)
    assert r["messages"][-1]["role"] == "user" and isinstance(r["messages"][1]["content"], list)
    with pytest.raises(RequestBuildError, match="system"):
        from_messages([{"role": "system", "content": [{"type": "text", "text": "s"}]}])


def test_cli_flags():
    assert set(oracle.LAUNCHER_FLAGS) <= oracle.rollout_cli_flags()


def test_per_rank_chunk():
    assert per_rank_chunk(4, 2, 8) == 1 and per_rank_chunk(8, 4, 3) == 10
    with pytest.raises(ChunkingError, match="decode_batch_size=1"):
        per_rank_chunk(1, 2, 3)
    assert chunks(5, 2) == [(0, 2), (2, 4), (4, 5)] and chunks(0, 3) == []


def test_response_validation():
    out = parse_infer_response([ok_item(0, True), ok_item(1, False)], 2)
    assert out[0].prompt_token_ids and out[1].token_ids
    oracle.validate_output(ok_item(0, True))  # our canned reply is a valid ms-swift RolloutOutput
    bad = ok_item(0, False)
    bad["prompt_token_ids"] = []
    with pytest.raises(RolloutResponseError, match="prompt_token_ids"):
        parse_infer_response([bad], 1)
    bad = ok_item(0, False)
    del bad["choices"][0]["token_ids"]
    with pytest.raises(RolloutResponseError, match="token_ids"):
        parse_infer_response([bad], 1)
    with pytest.raises(RolloutResponseError, match="server error: boom"):
        parse_infer_response([{"object": "error", "message": "boom"}], 1)
    with pytest.raises(RolloutResponseError, match="2 outputs for 1"):
        parse_infer_response([ok_item(0, True)] * 2, 1)


def test_prompt_alignment():
    assert check_prompt_alignment([1, 2, 3], [1, 2, 3]) == 3
    with pytest.raises(PromptMismatchError, match="first difference at index 1"):
        check_prompt_alignment([1, 2, 3], [1, 9, 3])
    with pytest.raises(PromptMismatchError, match="do_resize"):
        check_prompt_alignment([1, 2, 3], [1, 2, 3, 3])
    with pytest.raises(PromptMismatchError, match="prompt_len 2"):
        check_prompt_alignment([1, 2, 3], [1, 2, 3], 2)
