"""Checks for capability `rollout-server-contract`, the server's side: the HF rollout backend, the loopback
server and its routes, weight sync on ms-swift 4.6.0's protocol, and the launcher (CLI flags, preflight, readiness,
cleanup), on the tiny Qwen3-VL over local HTTP (no vLLM, no GPU). The request side is in rollout_server_contract.py."""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import time

import pydantic
import pytest
import requests as _requests
import torch

from coordexp.generation import swift_contract as sc
from coordexp.generation.auth import TOKEN_HEADER
from coordexp.generation.backend import IM_END_ID, ServerBackend
from coordexp.generation.hf_backend import HFBackend, RolloutBackendError, RolloutLengthError, encode_request
from coordexp.generation.request import DecodeSettings, request_config
from coordexp.generation.sync_client import GlooSyncClient
from coordexp.generation.weight_sync import WeightPusher, digest, sync_tensors
from coordexp.stage2 import launcher as _launcher
from specgen import check
from tests.helpers import swift_oracle as oracle
from tests.helpers.ddp_harness import free_port, run_ranks
from tests.helpers.launcher_fixtures import (
    SCRIPT,
    SERVER_SMOKE,
    STUBBORN_SERVER,
    ensure_assets,
    parse_server_command,
    pid_alive,
    run_launcher,
    write_config,
)
from tests.helpers.tiny_rollout import make_image, reference_greedy, request, serving, tiny

CAP = "rollout-server-contract"
# Why some checks run off the entrypoints (reach_exception).
NO_STAGE2_OFFSETS = "no stage_2 profile we ship trains coord offsets (configs/stage2_ab/base.yaml)"


def auth(srv) -> dict:
    """The run's token header, as the learner's weight-sync client sends it."""
    return {TOKEN_HEADER: srv.token}


@pytest.fixture(scope="module")
def tiny_img(tmp_path_factory):
    return make_image(tmp_path_factory.mktemp("rimg") / "a.png")


@pytest.fixture(scope="module")
def hf():
    model, tok = tiny()
    return HFBackend(model, tok)


@pytest.fixture(scope="module")
def smoke_preflight():
    """The launcher's preflight of the CPU server smoke config (its JSONL guards are covered elsewhere)."""
    from coordexp.stage2.launcher import run_preflight

    return run_preflight(str(SERVER_SMOKE), {}, validate_jsonl=lambda f, m: [])


@pytest.fixture(scope="module")
def launch_assets(tmp_path_factory):
    return ensure_assets(tmp_path_factory.mktemp("launch"))


def _port_closed(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


# ---------------------------------------------------------------- HF Rollout Backend


@check(CAP, "HF Rollout Backend", "Greedy rollout matches a no-cache reference")
def check_greedy_rollout_matches_a_no_cache_reference(hf, tiny_img):
    from coordexp.format.template import build_messages, encode_sample
    from coordexp.generation.request import from_messages

    model, tok = tiny()
    rec = {"images": [tiny_img], "width": 64, "height": 64, "objects": []}
    req = from_messages(build_messages(rec, field_order="desc_first", with_assistant=False))
    out = hf.generate([req], DecodeSettings(max_tokens=6, repetition_penalty=1.3), seed_base=1)[0]
    enc = encode_request(req, tok)
    ref = reference_greedy(model, enc.prompt_ids, enc.pixel_values, enc.image_grid_thw, 6, 1.3, IM_END_ID)
    body = out.token_ids[:-1] if out.finish_reason == "length" else out.token_ids
    assert body == ref
    learner = encode_sample(rec, tok, field_order="desc_first")
    assert out.prompt_token_ids == learner.input_ids[: learner.prompt_len]
    assert model.config.text_config.use_cache is False


@check(CAP, "HF Rollout Backend", "EOS is appended at the token limit")
def check_eos_is_appended_at_the_token_limit(hf, tiny_img):
    out = hf.generate([request(tiny_img)], DecodeSettings(max_tokens=3), seed_base=1)[0]
    assert len(out.token_ids) == 4 and out.token_ids[-1] == IM_END_ID and out.token_ids.count(IM_END_ID) == 1
    assert out.finish_reason == "length"


@check(CAP, "HF Rollout Backend", "Sampling is seeded and the caller's RNG is restored")
def check_sampling_is_seeded_and_the_callers_rng_is_restored(hf, tiny_img):
    s = DecodeSettings(max_tokens=8, temperature=1.0)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = hf.generate([request(tiny_img)] * 2, s, seed_base=7)
    assert torch.equal(before, torch.random.get_rng_state())
    b = hf.generate([request(tiny_img)] * 2, s, seed_base=7)
    c = hf.generate([request(tiny_img)], s, seed_base=7, request_offset=1)
    assert [o.token_ids for o in a] == [o.token_ids for o in b] and c[0].token_ids == a[1].token_ids
    hf.generate([request(None)] * 2, DecodeSettings(max_tokens=1), seed_base=2**31 - 1)
    assert hf.last_seeds == [2**31 - 1, 1]
    with pytest.raises(RolloutBackendError, match="seed_base"):
        hf.generate([request(None)], DecodeSettings(max_tokens=1), seed_base=0)


# ---------------------------------------------------------------- HF Rollout Length Gate


@check(CAP, "HF Rollout Length Gate", "Over-long request fails before generation")
def check_over_long_request_fails_before_generation(hf, tiny_img, monkeypatch):
    model, tok = tiny()
    n0 = len(encode_request(request(None), tok).prompt_ids)
    n1 = len(encode_request(request(tiny_img), tok).prompt_ids)
    calls = []
    monkeypatch.setattr(model, "generate", lambda *a, **k: calls.append(1))
    limit = model.config.text_config.max_position_embeddings
    with pytest.raises(
        RolloutLengthError,
        match=rf"rollout request 1: prompt_len {n1} \+ max_new_tokens "
        rf"{limit - n0} = {n1 + limit - n0} exceeds "
        rf"max_position_embeddings {limit}",
    ):
        hf.generate([request(None), request(tiny_img)], DecodeSettings(max_tokens=limit - n0), seed_base=1)
    assert calls == []


# ---------------------------------------------------------------- Loopback Rollout Server


@pytest.fixture()
def loopback():
    model, tok = tiny()
    with serving(copy.deepcopy(model), tok) as srv:
        yield srv


@check(CAP, "Loopback Rollout Server", "Client round trip equals the in-process backend")
def check_client_round_trip_equals_the_in_process_backend(loopback, hf, tiny_img):
    s = DecodeSettings(max_tokens=4, temperature=1.0, repetition_penalty=1.1)
    reqs = [request(tiny_img), request(None), request(tiny_img, "other")]
    remote = ServerBackend(loopback.url, chunk_size=2).generate(reqs, s, seed_base=41)
    assert remote == hf.generate(reqs, s, seed_base=41)
    raw = _requests.post(
        f"{loopback.url}/infer/", timeout=30, json={"infer_requests": reqs, "request_config": request_config(s, 41)}
    ).json()
    for item in raw:
        oracle.validate_output(item)


@check(CAP, "Loopback Rollout Server", "Weight push reaches the server model")
def check_weight_push_reaches_the_server_model(loopback):
    from safetensors.torch import save

    model, _ = tiny()
    learner = _perturbed(model, 0.01, 0)
    push = _pusher(loopback)
    try:
        push(learner)
    finally:
        push.close()
    srv = loopback.service.model.state_dict()
    assert all(torch.equal(srv[k], v) for k, v in learner.state_dict().items())
    r = _requests.post(
        f"{loopback.url}/update_flattened_params/",
        data=save({"lm_head.weight": torch.zeros(1)}),
        headers={**auth(loopback), "Content-Type": "application/x-safetensors"},
        timeout=10,
    )
    assert r.status_code == 415, r.text


# ---------------------------------------------------------------- Hostile Requests To The Loopback Server


def _raw_http(srv, data: bytes, wait: float = 20.0) -> tuple[int | None, dict | None]:
    """(status, JSON body) of one raw request; (None, None) when the server closes without an answer."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=wait) as s:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                pytest.fail(f"no answer within {wait:g} s: the connection hangs ({data[:60]!r})")
            if not chunk:
                break
            out += chunk
            head, sep, body = out.partition(b"\r\n\r\n")
            length = [ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")]
            if sep and length and len(body) >= int(length[0].split(b":")[1]):
                break
    if not out.startswith(b"HTTP/"):
        return None, None
    head, _, body = out.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body) if body else None


def _post_raw(path: str, body: bytes, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json", *headers]
    if not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + body


def _infer_raw(reqs) -> bytes:
    cfg = {"return_details": True, "seed": 1, "max_tokens": 2}
    return _post_raw("/infer/", json.dumps({"infer_requests": reqs, "request_config": cfg}).encode())


@check(CAP, "Hostile Requests To The Loopback Server", "Malformed HTTP gets a 4xx with a message")
def check_malformed_http_gets_a_4xx_with_a_message(loopback, capfd):
    cases = {
        "Content-Length abc": _post_raw("/infer/", b"{}", "Content-Length: abc"),
        "Content-Length -1": _post_raw("/infer/", b"{}", "Content-Length: -1"),
        "Content-Length 1e12": _post_raw("/infer/", b"{}", "Content-Length: 1e12"),
        "chunked": _post_raw("/infer/", b"2\r\n{}\r\n0\r\n\r\n", "Transfer-Encoding: chunked"),
        "nested JSON": _post_raw("/infer/", b"[" * 100_000 + b"]" * 100_000),
        "integer requests": _infer_raw([1, 2]),
    }
    for name, data in cases.items():
        status, body = _raw_http(loopback, data)
        assert status is not None and 400 <= status < 500, (name, status, body)
        assert body and body.get("message"), (name, body)
    err = capfd.readouterr().err
    assert "Traceback" not in err, err[-2000:]


@check(CAP, "Hostile Requests To The Loopback Server", "A FIFO image is refused without holding the generation lock")
def check_a_fifo_image_is_refused_without_the_lock(loopback, tiny_img, tmp_path):
    fifo = tmp_path / "image.png"
    os.mkfifo(fifo)
    for path in (str(fifo), "/dev/zero"):
        status, body = _raw_http(loopback, _infer_raw([request(path)]))
        assert status == 400 and path in body["message"] and "not a regular file" in body["message"], body
    status, body = _raw_http(loopback, _infer_raw([request(tiny_img)]), wait=120)
    assert status == 200 and body[0]["response"]["choices"][0]["token_ids"], (status, body)


@check(CAP, "Hostile Requests To The Loopback Server", "A silent client times out")
def check_a_silent_client_times_out():
    model, tok = tiny()
    with serving(copy.deepcopy(model), tok, request_timeout_s=1.0, log=lambda m: None) as srv:
        t0 = time.monotonic()
        status, body = _raw_http(srv, b"POST /infer/ HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
        assert status == 408 and time.monotonic() - t0 < 10, (status, body)
        assert _requests.get(f"{srv.url}/health/", timeout=10).status_code == 200


# ---------------------------------------------------------------- Weight Sync Only For The Run's Learner


@check(
    CAP, "Weight Sync Only For The Run's Learner", "An unauthenticated weight-sync request is 401 and changes nothing"
)
def check_an_unauthenticated_weight_sync_request_is_401(loopback, monkeypatch):
    import hmac

    from coordexp.generation import auth

    compared = []
    real = hmac.compare_digest
    monkeypatch.setattr(auth.hmac, "compare_digest", lambda a, b: compared.append(1) or real(a, b))
    model, _ = tiny()
    svc = loopback.service
    push = _pusher(loopback)
    try:
        push(_perturbed(model, 0.01, 1))  # the learner, with the run's token: a communicator is open
        before = (
            [id(r) for r in svc.receivers],
            svc.weight_updates,
            svc.buckets_received,
            len(svc.sync_digests),
            {k: v.clone() for k, v in svc.model.state_dict().items()},
        )
        init = sc.init_communicator_body("127.0.0.1", free_port(), 2)
        meta = [{"name": "lm_head.weight", "dtype": "torch.float32", "shape": [1], "start_idx": 0}]
        routes = {
            "/init_communicator/": json.dumps(init).encode(),
            "/update_flattened_params/": json.dumps({"metadatas": meta}).encode(),
            "/process_weights_after_loading/": b"",
            "/close_communicator/": b"",
        }
        n = len(compared)
        for route, body in routes.items():
            for headers in ((), (f"{TOKEN_HEADER}: not-the-token",), (f"{TOKEN_HEADER}: {loopback.token[:-1]}",)):
                status, answer = _raw_http(loopback, _post_raw(route, body, *headers))
                assert status == 401 and TOKEN_HEADER in answer["message"], (route, headers, status, answer)
        assert len(compared) - n == 3 * len(routes), "every request is compared with hmac.compare_digest"
        after = svc.model.state_dict()
        assert [id(r) for r in svc.receivers] == before[0] and svc.receivers
        assert (svc.weight_updates, svc.buckets_received, len(svc.sync_digests)) == before[1:4]
        assert all(torch.equal(after[k], v) for k, v in before[4].items())
        push(_perturbed(model, 0.01, 2))  # the learner goes on syncing
        assert svc.weight_updates > before[1]
    finally:
        push.close()


@check(CAP, "Weight Sync Only For The Run's Learner", "The launcher gives both sides one fresh token")
def check_the_launcher_gives_both_sides_one_fresh_token(smoke_preflight, monkeypatch):
    from coordexp.generation.auth import TOKEN_ENV

    envs = [_launcher.launch_env(smoke_preflight, "loopback") for _ in range(2)]
    tokens = [e[TOKEN_ENV] for e in envs]
    assert tokens[0] != tokens[1] and all(len(t) >= 32 for t in tokens), tokens
    for env, token in zip(envs, tokens, strict=True):
        assert all(token not in v for k, v in env.items() if k != TOKEN_ENV), "the token leaks into another variable"
    monkeypatch.setenv(TOKEN_ENV, tokens[0])
    client = GlooSyncClient("http://127.0.0.1:1")
    assert client._session.headers.get(TOKEN_HEADER) == tokens[0]


# ---------------------------------------------------------------- Weight Sync On ms-swift's Protocol


def _perturbed(model, scale, seed):
    m = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return m


def _pusher(srv, group_timeout_s=20.0):
    port = free_port()
    return WeightPusher(
        srv.url,
        bucket_mb=8,
        client_factory=lambda: GlooSyncClient(
            srv.url, token=srv.token, group_port=port, group_timeout_s=group_timeout_s
        ),
    )


SYNC_ROUTES = (
    "/get_world_size/",
    "/init_communicator/",
    "/update_flattened_params/",
    "/process_weights_after_loading/",
    "/reset_prefix_cache/",
    "/close_communicator/",
)


@check(CAP, "Weight Sync On ms-swift's Protocol", "Server weights equal the learner's after each sync")
def check_server_weights_equal_the_learners_after_each_sync():
    model, tok = tiny()
    for world_size in (1, 2):
        with serving(copy.deepcopy(model), tok, world_size=world_size, log=lambda m: None) as srv:
            push = _pusher(srv)
            recs = []
            try:
                for seed in (1, 2):
                    learner = _perturbed(model, 0.05, seed)
                    recs.append(push(learner))
                    sent, got = sync_tensors(learner), srv.service.model.state_dict()
                    assert all(torch.equal(got[k], v) for k, v in sent.items()), (world_size, seed)
                    assert srv.service.sync_digests[-1] == recs[-1].digest == digest(sent)
            finally:
                push.close()
            assert all(r.buckets > 1 for r in recs) and recs[0].digest != recs[1].digest
            seq = [p for _m, p in srv.service.calls if p in SYNC_ROUTES]

            def per_sync(r):
                return ["/update_flattened_params/"] * r.buckets + [
                    "/process_weights_after_loading/",
                    "/reset_prefix_cache/",
                ]

            assert seq == [
                "/get_world_size/",
                "/init_communicator/",
                *per_sync(recs[0]),
                *per_sync(recs[1]),
                "/close_communicator/",
            ], seq
            assert ("GET", "/get_world_size/") in srv.service.calls


@check(CAP, "Weight Sync On ms-swift's Protocol", "Bodies ms-swift rejects are rejected")
def check_bodies_ms_swift_rejects_are_rejected(loopback):
    init_req, upd_req = sc.sync_models()[:2]
    meta = {
        "name": "lm_head.weight",
        "shape": [4],
        "dtype": "torch.float32",
        "start_idx": 0,
        "end_idx": 16,
        "numel": 16,
    }
    bad_updates = [
        {"metadatas": [{k: v for k, v in meta.items() if k != "numel"}]},
        {"metadatas": "x"},
        {"metas": [meta]},
        {"metadatas": [{**meta, "shape": "big"}]},
        {"metadatas": [{**meta, "dtype": 3}]},
    ]
    bad_inits = [{"host": "127.0.0.1", "port": "p", "world_size": 2}, {"host": "127.0.0.1"}, []]
    client = GlooSyncClient(loopback.url, token=loopback.token, group_port=free_port(), group_timeout_s=5)
    client.init_communicator()
    try:
        for model_cls, route, bodies in (
            (upd_req, "/update_flattened_params/", bad_updates),
            (init_req, "/init_communicator/", bad_inits),
        ):
            for body in bodies:
                with pytest.raises(pydantic.ValidationError):
                    model_cls.model_validate(body)
                r = _requests.post(f"{loopback.url}{route}", json=body, headers=auth(loopback), timeout=10)
                assert r.status_code == 422, (route, body, r.status_code, r.text)
        good = upd_req(metadatas=[meta]).model_dump(mode="json")
        assert upd_req.model_validate(good) and sc.parse_update_flattened_params(good).metadatas[0].numel == 16
    finally:
        client.close_communicator()


@check(CAP, "Weight Sync On ms-swift's Protocol", "A wrong metadata shape is refused before any broadcast")
def check_a_wrong_metadata_shape_is_refused_before_any_broadcast(loopback):
    from coordexp.generation.sync_client import SyncClientError

    model, _ = tiny()
    t = model.state_dict()["lm_head.weight"].detach()
    client = GlooSyncClient(loopback.url, token=loopback.token, group_port=free_port(), group_timeout_s=5)
    client.init_communicator()
    sent = []
    client.group.broadcast = lambda tensor, src: sent.append(tensor)  # observe: no broadcast may happen
    try:
        bucket = sc.flattened_bucket([("lm_head.weight", t.reshape(t.shape[1], t.shape[0]))])
        with pytest.raises(SyncClientError, match=r"HTTP 400.*lm_head.weight.*shape \(64, \d+\) != model shape"):
            client.update_flattened_params(bucket.get_metadata(), bucket.get_flattened_tensor())
        assert sent == [] and loopback.service.buckets_received == 0
    finally:
        client.close_communicator()


@check(CAP, "Weight Sync On ms-swift's Protocol", "A skipped barrier fails the sync")
def check_a_skipped_barrier_fails_the_sync():
    from coordexp.generation.sync_client import SyncClientError

    model, tok = tiny()
    with serving(copy.deepcopy(model), tok, group_timeout_s=3, log=lambda m: None) as srv:
        client = GlooSyncClient(srv.url, token=srv.token, group_port=free_port(), group_timeout_s=3)
        client.init_communicator()
        client.group.barrier = lambda: None  # the slip: broadcast, then straight on
        t0 = time.monotonic()
        try:
            named = sync_tensors(model)
            bucket = sc.flattened_bucket([(n, named[n]) for n in sorted(named)[:3]])
            client.update_flattened_params(bucket.get_metadata(), bucket.get_flattened_tensor())
            with pytest.raises(SyncClientError, match=r"HTTP 500.*bucket 1 \(rank 0\): barrier"):
                client.process_weights_after_loading()
        finally:
            client.close_communicator()
        assert time.monotonic() - t0 < 30 and srv.service.buckets_received == 0


@check(CAP, "Weight Sync On ms-swift's Protocol", "The CPU launcher smoke syncs on the protocol")
def check_the_cpu_launcher_smoke_syncs_on_the_protocol(tmp_path):
    import re

    from coordexp.config import load_config
    from coordexp.training.inputs import ensure_inputs

    cfg = load_config(SERVER_SMOKE)
    ensure_inputs(cfg)
    port, gport, out = free_port(), free_port(), tmp_path / "run"
    leaf = tmp_path / "configs" / "leaf.yaml"
    leaf.parent.mkdir(parents=True)
    leaf.write_text(
        "\n".join(
            [
                f"extends: {SERVER_SMOKE}",
                "model:",
                f"  model: {cfg.model['model']}",
                "training:",
                f"  output_dir: {out}",
                f"  logging_dir: {out / 'tb'}",
                "custom:",
                f"  train_jsonl: {cfg.custom.train_jsonl}",
                f"  val_jsonl: {cfg.custom.val_jsonl}",
                "rollout_matching:",
                "  vllm:",
                "    server:",
                "      servers:",
                f"        - base_url: http://127.0.0.1:{port}",
                f"          group_port: {gport}",
            ]
        )
        + "\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORDEXP_STAGE2_")}
    r = subprocess.run([str(SCRIPT), str(leaf)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "(channels ABAB," in r.stdout + r.stderr
    learner = re.findall(r"learner: weight sync (\d+): (\d+) tensors in (\d+) buckets, sha256 ([0-9a-f]{64})", r.stderr)
    server = re.findall(
        r"rollout server: weights after sync (\d+): (\d+) tensors, sha256 ([0-9a-f]{64})", r.stdout + r.stderr
    )
    assert len(learner) == 2 and [(n, t, d) for n, t, _b, d in learner] == server, (learner, server)
    assert learner[0][3] != learner[1][3]
    assert f"weight-sync group on 127.0.0.1:{gport}, 2 ranks" in r.stdout + r.stderr  # servers[0].group_port
    assert _port_closed(port) and _port_closed(gport)
    left = subprocess.run(
        ["pgrep", "-f", f"(coordexp.generation.server .*--port {port}|coordexp.train {leaf})"],
        capture_output=True,
        text=True,
    )
    assert left.returncode == 1, left.stdout


# ---------------------------------------------------------------- Server Runs The Learner's Effective Weights


def _untied(model):
    m = copy.deepcopy(model)
    m.lm_head.weight = torch.nn.Parameter(m.get_input_embeddings().weight.detach().clone())
    m.config.tie_word_embeddings = False
    m.config.text_config.tie_word_embeddings = False
    return m


def _with_offsets(model, tie_head, seed):
    """A learner copy with a CoordOffset adapter holding random tables (hooks on the copy only)."""
    from coordexp.format.coord import coord_token_ids
    from coordexp.training.model import CoordOffset

    m = copy.deepcopy(model)
    _m, tok = tiny()
    adapter = CoordOffset(m, start=coord_token_ids(tok)[0], tie_head=tie_head)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        adapter.embed.copy_(0.5 * torch.randn(adapter.embed.shape, generator=g))
        if adapter.head is not None:
            adapter.head.copy_(0.5 * torch.randn(adapter.head.shape, generator=g))
    return m, adapter


def _next_token_logits(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1]


@check(
    CAP,
    "Server Runs The Learner's Effective Weights",
    "Server logits equal the learner's effective logits after a sync",
)
@pytest.mark.reach_exception(NO_STAGE2_OFFSETS + ", so no smoke's weight sync folds them into the rows it sends")
def check_server_logits_equal_the_learners_effective_logits_after_a_sync(tmp_path, monkeypatch):
    from coordexp.config import load_config
    from coordexp.format.coord import coord_token_ids
    from coordexp.generation.auth import TOKEN_ENV
    from coordexp.stage2.trainer import configured_rollouts

    base, tok = tiny()
    coords = coord_token_ids(tok)
    ids = encode_request(request(None), tok).prompt_ids + [coords[3], coords[500], coords[999]]
    for plain, tie_head in ((base, True), (_untied(base), False)):
        learner, adapter = _with_offsets(plain, tie_head, seed=7)
        before = {k: v.clone() for k, v in learner.state_dict().items()}
        want = _next_token_logits(learner, ids)
        bare = _next_token_logits(plain, ids)
        assert (want - bare).abs().max() > 1e-2, tie_head  # the offsets matter for this prompt
        with serving(copy.deepcopy(plain), tok, log=lambda m: None) as srv:
            monkeypatch.setenv(TOKEN_ENV, srv.token)  # as the launcher exports the run's token to the learner
            # the run's own wiring (stage2.trainer.run's setup step) for a server-mode config
            leaf = tmp_path / f"leaf_{tie_head}.yaml"
            leaf.write_text(
                f"extends: {SERVER_SMOKE}\nrollout_matching:\n  vllm:\n    server:\n      servers:\n"
                f"        - base_url: {srv.url}\n          group_port: {free_port()}\n"
            )
            backend, push = configured_rollouts(load_config(leaf), learner, tok, adapter)
            try:
                push(learner)
            finally:
                push.close()
                backend.close()
            got = _next_token_logits(srv.service.model, ids)
        assert torch.allclose(got, want, atol=1e-4, rtol=0), (tie_head, float((got - want).abs().max()))
        after = learner.state_dict()
        assert all(torch.equal(after[k], v) for k, v in before.items()), tie_head


@check(CAP, "Server Runs The Learner's Effective Weights", "Separate head offsets on a tied model are refused")
@pytest.mark.reach_exception(
    NO_STAGE2_OFFSETS + ", and the learner refuses these only after train_stage2.sh has started the server and "
    "loaded the model (~40 s on CPU), past the bad-input smoke's budget"
)
def check_separate_head_offsets_on_a_tied_model_are_refused():
    from coordexp.stage2.trainer import Stage2SetupError, make_weight_push

    base, _tok = tiny()
    learner, adapter = _with_offsets(base, tie_head=False, seed=3)
    with pytest.raises(Stage2SetupError, match=r"run\.yaml: custom\.coord_offset\.tie_head"):
        make_weight_push("http://127.0.0.1:1", model=learner, coord_offset=adapter, where="run.yaml")
    _learner, tied = _with_offsets(base, tie_head=True, seed=3)
    make_weight_push("http://127.0.0.1:1", model=_learner, coord_offset=tied, where="run.yaml")


# ---------------------------------------------------------------- Endpoint Set Pinned To ms-swift


@check(CAP, "Endpoint Set Pinned To ms-swift", "Loopback routes equal ms-swift's")
def check_loopback_routes_equal_ms_swifts(loopback):
    theirs = oracle.swift_rollout_routes()
    assert set(loopback.service.routes) == set(theirs)
    must = {
        ("GET", "/health/"),
        ("GET", "/get_world_size/"),
        ("POST", "/infer/"),
        ("POST", "/init_communicator/"),
        ("POST", "/update_named_param/"),
        ("POST", "/update_flattened_params/"),
        ("POST", "/process_weights_after_loading/"),
        ("POST", "/reset_prefix_cache/"),
        ("POST", "/close_communicator/"),
        ("POST", "/get_engine_type/"),
    }
    assert must <= theirs
    for method, path in sorted(theirs):  # every route answers (none is a 404/405 on the live server)
        r = _requests.request(method, f"{loopback.url}{path}", json={}, timeout=10)
        assert r.status_code not in (404, 405), (method, path, r.status_code)


# ---------------------------------------------------------------- Weight Sync Failure Reaches Every Rank


@check(CAP, "Weight Sync Failure Reaches Every Rank", "Ranks take the same path")
def check_ranks_take_the_same_path(tmp_path):
    out = run_ranks("ok", tmp_path)
    assert out[0]["returns"] == out[1]["returns"] == [True, False, True, True]
    assert (out[0]["sync_calls"], out[1]["sync_calls"]) == (3, 0)


@check(CAP, "Weight Sync Failure Reaches Every Rank", "Rank0 failure raises on every rank")
def check_rank0_failure_raises_on_every_rank(tmp_path):
    t0 = time.monotonic()
    out = run_ranks("rank0_fails", tmp_path, timeout_s=40.0, pg_timeout_s=60.0)
    assert not any(o.get("hung") for o in out.values()), f"a rank hung: {out}"
    assert time.monotonic() - t0 < 40
    for r in (0, 1):
        assert out[r]["error"].startswith(
            f"WeightSyncError: rank {r}: rollout weight sync failed on rank 0 at "
            "optimizer step 1: ConnectionError: planted"
        )


# ---------------------------------------------------------------- Launcher Preflight


@check(CAP, "Launcher Preflight", "Paths ignore the working directory")
def check_paths_ignore_the_working_directory(launch_assets, tmp_path, monkeypatch):
    import shutil

    model, data = launch_assets
    repo = tmp_path / "repo"
    (repo / "configs" / "exp" / "d").mkdir(parents=True)
    shutil.copytree(data, repo / "configs" / "exp" / "d", dirs_exist_ok=True)
    shutil.copytree(data, repo / "rootdata")
    cfg = write_config(repo, 9, model=str(model), train="./d/train.coord.jsonl", val="rootdata/val.coord.jsonl")
    seen = []
    for cwd in (tmp_path, repo / "configs"):
        monkeypatch.chdir(cwd)
        pf = _launcher.run_preflight(os.path.relpath(cfg, cwd), {})
        seen.append((pf.train_jsonl_resolved, pf.val_jsonl_resolved, pf.root_image_dir_resolved))
    assert (
        seen[0]
        == seen[1]
        == (
            str(repo / "configs/exp/d/train.coord.jsonl"),
            str(repo / "rootdata/val.coord.jsonl"),
            str(repo / "configs/exp/d"),
        )
    )


@check(CAP, "Launcher Preflight", "Multiple servers and overlapping GPUs are rejected")
def check_multiple_servers_and_overlapping_gpus_are_rejected(launch_assets, tmp_path):
    model, data = launch_assets
    train = str(data / "train.coord.jsonl")

    def problems(cfg, env):
        with pytest.raises(_launcher.PreflightError) as ei:
            _launcher.run_preflight(str(cfg), env, validate_jsonl=lambda f, m: [])
        return "\n".join(ei.value.problems)

    two = write_config(tmp_path, 1, model=str(model), train=train, servers=["http://127.0.0.1:1", "http://127.0.0.1:2"])
    assert "exactly one" in problems(two, {})
    one = write_config(tmp_path, 1, model=str(model), train=train)
    assert "overlap on [1]" in problems(
        one, {"COORDEXP_STAGE2_SERVER_GPUS": "0,1", "COORDEXP_STAGE2_LEARNER_GPUS": "1,2"}
    )
    _launcher.run_preflight(
        str(one),
        {"COORDEXP_STAGE2_SERVER_GPUS": "0", "COORDEXP_STAGE2_LEARNER_GPUS": "1"},
        validate_jsonl=lambda f, m: [],
    )


@check(CAP, "Launcher Preflight", "Usage errors exit 2")
@pytest.mark.reach_exception(
    "train_stage2.sh refuses a missing argument or config file in its shell code, before any Python runs, so no "
    "product function executes (scripts/bad_inputs/serving.sh runs the same refusals)"
)
@pytest.mark.parametrize("args", [[], ["/no/such.yaml"]])
def check_usage_errors_exit_2(args):
    r = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "usage: scripts/train_stage2.sh <config.yaml>" in r.stderr


# ---------------------------------------------------------------- Launcher Parity With ms-swift's Server

WRONG_WORLD_SERVER = r"""
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        body = b'{"world_size": 2}' if "world" in self.path else b'{"status": "ok"}'
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


@check(CAP, "Launcher Parity With ms-swift's Server", "A server world size other than DP times TP aborts the launch")
def check_a_server_world_size_other_than_dp_times_tp_aborts_the_launch(launch_assets, tmp_path):
    model, data = launch_assets
    port = free_port()
    cfg = write_config(tmp_path, port, model=str(model), train=str(data / "train.coord.jsonl"))
    (tmp_path / "srv.py").write_text(WRONG_WORLD_SERVER)
    r = run_launcher(
        cfg, tmp_path, cwd=tmp_path, COORDEXP_STAGE2_SERVER_CMD_OVERRIDE=f"{sys.executable} {tmp_path}/srv.py {port}"
    )
    assert r.returncode == 1, r.stderr
    assert "reports world_size 2, but the server was started with data parallel x tensor parallel = 1" in r.stderr
    assert not (tmp_path / "learner.out").exists()
    assert _port_closed(port)


def _leaf(tmp_path, body):
    leaf = tmp_path / f"leaf{len(list(tmp_path.glob('leaf*.yaml')))}.yaml"
    leaf.write_text(
        f"extends: {SERVER_SMOKE}\nrollout_matching:\n  vllm:\n    server:\n      servers:\n"
        f"        - base_url: http://127.0.0.1:{free_port()}\n" + body
    )
    return str(leaf)


@check(CAP, "Launcher Parity With ms-swift's Server", "The server gets the learner's truncation strategy")
def check_the_server_gets_the_learners_truncation_strategy(smoke_preflight, tmp_path):
    from coordexp.config import load_config
    from coordexp.stage2.launcher import PreflightError, run_preflight, server_command

    assert load_config(SERVER_SMOKE).template.get("truncation_strategy") == "raise"
    assert parse_server_command(server_command(smoke_preflight, "swift"))["truncation_strategy"] == "delete"
    with pytest.raises(PreflightError) as ei:
        run_preflight(_leaf(tmp_path, "template:\n  truncation_strategy: left\n"), {}, validate_jsonl=lambda f, m: [])
    assert any("template.truncation_strategy" in p and "'left'" in p for p in ei.value.problems), ei.value.problems


@check(CAP, "Launcher Parity With ms-swift's Server", "mm_processor_kwargs holds only what is sent")
def check_mm_processor_kwargs_holds_only_what_is_sent(tmp_path):
    import json as _json

    from coordexp.config import load_config
    from coordexp.stage2.launcher import PreflightError, run_preflight, server_command

    mm = "    mm_processor_kwargs:\n      do_resize: false\n"
    with pytest.raises(PreflightError) as ei:
        run_preflight(_leaf(tmp_path, mm + "      min_pixels: 3136\n"), {}, validate_jsonl=lambda f, m: [])
    assert any("mm_processor_kwargs.min_pixels: not passed" in p for p in ei.value.problems), ei.value.problems
    max_pixels = load_config(SERVER_SMOKE).template["max_pixels"]
    pf = run_preflight(_leaf(tmp_path, mm + f"      max_pixels: {max_pixels}\n"), {}, validate_jsonl=lambda f, m: [])
    engine = _json.loads(parse_server_command(server_command(pf, "swift"))["vllm_engine_kwargs"])
    assert engine == {"mm_processor_kwargs": {"do_resize": False}}


@check(CAP, "Launcher Parity With ms-swift's Server", "A CUDA learner without vLLM is refused up front")
def check_a_cuda_learner_without_vllm_is_refused_up_front(monkeypatch):
    from coordexp.generation import sync_client
    from coordexp.stage2.trainer import Stage2SetupError, make_weight_push

    monkeypatch.setattr(sync_client, "_cuda_available", lambda: True)
    monkeypatch.setattr(sync_client, "_vllm_importable", lambda: False)
    monkeypatch.delenv("COORDEXP_STAGE2_SERVER_IMPL", raising=False)
    model, _tok = tiny()
    t0 = time.monotonic()
    with pytest.raises(Stage2SetupError, match=r"run\.yaml: the learner runs with CUDA but vLLM is not importable"):
        make_weight_push("http://127.0.0.1:1", model=model, where="run.yaml")
    assert time.monotonic() - t0 < 5
    monkeypatch.setenv("COORDEXP_STAGE2_SERVER_IMPL", "loopback")
    push = make_weight_push("http://127.0.0.1:1", model=model, where="run.yaml")
    assert isinstance(push.client_factory(), GlooSyncClient)


# ---------------------------------------------------------------- Launcher Readiness And Cleanup


@check(CAP, "Launcher Readiness And Cleanup", "Learner runs after readiness with the launcher variables")
def check_learner_runs_after_readiness_with_the_launcher_variables(launch_assets, tmp_path):
    model, data = launch_assets
    port = free_port()
    cfg = write_config(tmp_path, port, model=str(model), train=str(data / "train.coord.jsonl"))
    r = run_launcher(cfg, tmp_path, cwd=tmp_path, FAKE_RC=7)
    assert r.returncode == 7, r.stderr
    seen = (tmp_path / "learner.out").read_text()
    assert f"COORDEXP_STAGE2_SERVER_BASE_URL=http://127.0.0.1:{port}" in seen
    assert f"COORDEXP_STAGE2_SERVER_MODEL={model}" in seen and f"ROOT_IMAGE_DIR={data}" in seen
    assert 'world={"world_size": 1}' in seen and "world_size 1" in r.stderr
    assert _port_closed(port)


@check(CAP, "Launcher Readiness And Cleanup", "A server ignoring TERM is killed")
def check_a_server_ignoring_term_is_killed(launch_assets, tmp_path):
    model, data = launch_assets
    port = free_port()
    cfg = write_config(tmp_path, port, model=str(model), train=str(data / "train.coord.jsonl"))
    (tmp_path / "srv.py").write_text(STUBBORN_SERVER)
    r = run_launcher(
        cfg,
        tmp_path,
        cwd=tmp_path,
        COORDEXP_STAGE2_SERVER_CMD_OVERRIDE=f"{sys.executable} {tmp_path}/srv.py {port} {tmp_path}/pid",
    )
    assert r.returncode == 0 and "ignored TERM for 3 s: KILL" in r.stderr
    assert not pid_alive(int((tmp_path / "pid").read_text()))


@check(CAP, "Launcher Readiness And Cleanup", "Readiness timeout cleans up")
def check_readiness_timeout_cleans_up(launch_assets, tmp_path):
    model, data = launch_assets
    port = free_port()
    cfg = write_config(tmp_path, port, model=str(model), train=str(data / "train.coord.jsonl"))
    marker = f"sleep 311.{port}"
    r = run_launcher(
        cfg, tmp_path, cwd=tmp_path, COORDEXP_STAGE2_READY_TIMEOUT_S=1, COORDEXP_STAGE2_SERVER_CMD_OVERRIDE=marker
    )
    assert r.returncode == 1 and "did not answer 200 within 1 s" in r.stderr
    assert not (tmp_path / "learner.out").exists()
    assert subprocess.run(["pgrep", "-f", f"^{marker}$"], capture_output=True).returncode == 1


# ---------------------------------------------------------------- Rollout CLI Flags


@check(CAP, "Rollout CLI Flags", "Launcher flags exist")
def check_launcher_flags_exist(smoke_preflight):
    from coordexp.stage2.launcher import server_command

    flags = parse_server_command(server_command(smoke_preflight, "swift"))
    assert set(flags) <= oracle.rollout_cli_flags(), sorted(set(flags) - oracle.rollout_cli_flags())
    assert set(oracle.LAUNCHER_FLAGS) <= set(flags), sorted(set(oracle.LAUNCHER_FLAGS) - set(flags))
    assert len(oracle.LAUNCHER_FLAGS) == 17


@check(CAP, "Rollout CLI Flags", "Server command carries the learner's values")
def check_server_command_carries_the_learners_values(smoke_preflight):
    import json as _json

    from coordexp.config import load_config
    from coordexp.format.template import load_image_processor
    from coordexp.stage2.launcher import server_command

    cfg = load_config(SERVER_SMOKE)
    v = cfg.rollout_matching.vllm
    learner_resize = load_image_processor().do_resize
    swift = parse_server_command(server_command(smoke_preflight, "swift"))
    loop = parse_server_command(server_command(smoke_preflight, "loopback"))
    for got in (swift, loop):
        assert got["template"] == cfg.template["template"] and int(got["max_pixels"]) == cfg.template["max_pixels"]
    assert int(swift["max_length"]) == cfg.global_max_length == cfg.template["max_length"]
    assert (
        int(swift["vllm_tensor_parallel_size"]),
        int(swift["vllm_max_model_len"]),
        float(swift["vllm_gpu_memory_utilization"]),
    ) == (v.tensor_parallel_size, v.max_model_len, v.gpu_memory_utilization)
    assert (swift["vllm_enforce_eager"], swift["vllm_enable_lora"], swift["vllm_enable_prefix_caching"]) == tuple(
        str(x).lower() for x in (v.enforce_eager, v.enable_lora, v.enable_prefix_caching)
    )
    engine = _json.loads(swift["vllm_engine_kwargs"])
    assert engine["mm_processor_kwargs"] == v.mm_processor_kwargs
    assert engine["mm_processor_kwargs"]["do_resize"] is learner_resize is False
    assert loop["do_resize"] == str(learner_resize).lower()


@check(CAP, "Rollout CLI Flags", "A do_resize mismatch is refused")
def check_a_do_resize_mismatch_is_refused(tmp_path):
    from coordexp.stage2.launcher import PreflightError, processor_parity_problems, run_preflight

    leaf = tmp_path / "leaf.yaml"
    leaf.write_text(
        f"extends: {SERVER_SMOKE}\nrollout_matching:\n  vllm:\n    server:\n      servers:\n"
        f"        - base_url: http://127.0.0.1:{free_port()}\n    mm_processor_kwargs:\n"
        "      do_resize: true\n"
    )
    with pytest.raises(PreflightError) as ei:
        run_preflight(str(leaf), {}, validate_jsonl=lambda f, m: [])
    assert any("rollout_matching.vllm.mm_processor_kwargs.do_resize is True" in p for p in ei.value.problems)
    missing = processor_parity_problems("c.yaml", {}, 786432)
    assert len(missing) == 1 and "rollout_matching.vllm.mm_processor_kwargs.do_resize: required" in missing[0]
