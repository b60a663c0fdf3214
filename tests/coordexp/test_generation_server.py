"""The loopback rollout server: ms-swift's route set, /infer/ through the real client,
refusals (weight sync: test_rollout_sync_protocol.py)."""

from __future__ import annotations

import copy

import pytest
import requests

from coordexp.generation.backend import IM_END_ID, ServerBackend
from coordexp.generation.client import RolloutClient, RolloutContractError
from coordexp.generation.hf_backend import HFBackend
from coordexp.generation.request import DecodeSettings, request_config
from coordexp.generation.server import LoopbackRolloutServer
from tests.helpers import swift_oracle as oracle
from tests.helpers.tiny_rollout import make_image, request, serving, tiny

S = DecodeSettings(max_tokens=4, temperature=1.0, repetition_penalty=1.1)


@pytest.fixture(scope="module")
def img(tmp_path_factory):
    return make_image(tmp_path_factory.mktemp("img") / "a.png")


@pytest.fixture()
def server():
    model, tok = tiny()
    with serving(copy.deepcopy(model), tok) as srv:
        yield srv


def test_route_set_equals_ms_swift(server):
    assert set(server.service.routes) == set(oracle.swift_rollout_routes())


def test_route_parser_reads_registrations():
    src = "self.app.get('/a/')(x)\nself.app.post(\n  \"/b/\", dependencies=g)(y)"
    assert oracle.swift_rollout_routes(src) == {("GET", "/a/"), ("POST", "/b/")}
    with pytest.raises(RuntimeError, match="re-pin"):
        oracle.swift_rollout_routes("nothing here")


def test_simple_routes(server):
    c = RolloutClient(server.url, timeout_s=10)
    assert c.health() and c.world_size() == 1
    r = requests.post(f"{server.url}/get_engine_type/", timeout=10).json()
    assert r["enable_lora"] is False and r["engine_type"] == "LLMEngine"
    assert requests.get(f"{server.url}/nope/", timeout=10).status_code == 404
    assert requests.get(f"{server.url}/infer/", timeout=10).status_code == 405
    assert "lm_head.weight" in requests.get(f"{server.url}/get_model_state_keys/", timeout=10).json()["keys"]


def test_infer_through_the_client_equals_the_in_process_backend(server, img):
    model, tok = tiny()
    reqs = [request(img), request(None), request(img, "other")]
    remote = ServerBackend(server.url, chunk_size=2).generate(reqs, S, seed_base=41)
    local = HFBackend(model, tok).generate(reqs, S, seed_base=41)
    assert remote == local
    raw = requests.post(
        f"{server.url}/infer/", timeout=30, json={"infer_requests": reqs[:1], "request_config": request_config(S, 41)}
    ).json()
    oracle.validate_output(raw[0])
    ids = raw[0]["response"]["choices"][0]["token_ids"]
    assert IM_END_ID not in ids and raw[0]["response"]["choices"][0]["finish_reason"] == "length"


def test_length_gate_is_a_refusal_not_a_retry(server):
    c = RolloutClient(server.url, timeout_s=10)
    with pytest.raises(RolloutContractError, match="max_position_embeddings 32768"):
        c.infer([request(None)], DecodeSettings(max_tokens=32768), seed_base=1)
    assert c.attempts == 1


def test_bad_infer_config_is_422(server):
    cfg = request_config(S, 5)
    cfg["return_details"] = False
    r = requests.post(
        f"{server.url}/infer/", json={"infer_requests": [request(None)], "request_config": cfg}, timeout=10
    )
    assert r.status_code == 422 and "return_details" in r.json()["message"]


def test_only_loopback_hosts():
    model, tok = tiny()
    with pytest.raises(ValueError, match="loopback"):
        LoopbackRolloutServer(model, tok, host="0.0.0.0")
