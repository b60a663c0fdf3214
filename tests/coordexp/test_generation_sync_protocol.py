"""Weight sync on ms-swift 4.6.0's protocol against the loopback server: the sequence, bodies
built and parsed with ms-swift's models, tensors over the gloo group, refusals."""

from __future__ import annotations

import copy
import socket

import pytest
import requests
import torch

from coordexp.generation import swift_contract as sc
from coordexp.generation.auth import TOKEN_HEADER
from coordexp.generation.sync_client import GlooSyncClient, SyncClientError
from coordexp.generation.weight_sync import WeightPusher, digest, sync_tensors
from tests.helpers.tiny_rollout import serving, tiny


def auth(srv) -> dict:
    """The run's token header, as the learner's client sends it."""
    return {TOKEN_HEADER: srv.token}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def perturbed(model, scale: float, seed: int):
    m = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return m


def pusher(srv, **kw):
    port = free_port()
    return WeightPusher(
        srv.url,
        client_factory=lambda: GlooSyncClient(
            srv.url, token=srv.token, group_port=port, group_timeout_s=kw.pop("group_timeout_s", 20)
        ),
        bucket_mb=kw.pop("bucket_mb", 8),
    )


@pytest.mark.parametrize("world_size", [1, 2])
def test_server_weights_equal_the_learner_bitwise_after_each_sync(world_size):
    model, tok = tiny()
    with serving(copy.deepcopy(model), tok, world_size=world_size, log=lambda m: None) as srv:
        push = pusher(srv)
        try:
            for step in range(2):
                learner = perturbed(model, 0.05, seed=step)
                rec = push(learner)
                assert rec.buckets > 1, "more than one bucket, so the per-bucket sequence repeats"
                srv_sd, sent = srv.service.model.state_dict(), sync_tensors(learner)
                assert all(torch.equal(srv_sd[k], v) for k, v in sent.items())
                assert srv.service.sync_digests[-1] == rec.digest == digest(sent)
        finally:
            push.close()
        assert srv.service.receivers == []


def test_bodies_ms_swift_rejects_are_rejected_here():
    from pydantic import ValidationError

    model, tok = tiny()
    bad = [
        {"metadatas": [{"name": "x", "shape": [1], "dtype": "torch.float32", "start_idx": 0, "end_idx": 4}]},
        {"metadatas": "x"},
        {"metas": []},
        {"metadatas": [{"name": "x", "shape": "big", "dtype": 3, "start_idx": 0, "end_idx": 4, "numel": 4}]},
    ]
    with serving(copy.deepcopy(model), tok, log=lambda m: None) as srv:
        client = GlooSyncClient(srv.url, token=srv.token, group_port=free_port(), group_timeout_s=5)
        client.init_communicator()
        try:
            for body in bad:
                with pytest.raises(ValidationError):
                    sc.sync_models()[1].model_validate(body)
                r = requests.post(f"{srv.url}/update_flattened_params/", headers=auth(srv), json=body, timeout=10)
                assert r.status_code == 422, (body, r.text)
            for body in ({"host": "127.0.0.1", "port": "p", "world_size": 2}, {"host": "127.0.0.1"}):
                with pytest.raises(ValidationError):
                    sc.sync_models()[0].model_validate(body)
                assert (
                    requests.post(f"{srv.url}/init_communicator/", headers=auth(srv), json=body, timeout=10).status_code
                    == 422
                )
        finally:
            client.close_communicator()


def test_a_safetensors_body_is_refused():
    from safetensors.torch import save

    model, tok = tiny()
    with serving(copy.deepcopy(model), tok, log=lambda m: None) as srv:
        r = requests.post(
            f"{srv.url}/update_flattened_params/",
            data=save({"lm_head.weight": torch.zeros(1)}),
            headers={**auth(srv), "Content-Type": "application/x-safetensors"},
            timeout=10,
        )
        assert r.status_code == 415 and "broadcast" in r.json()["message"]


def test_a_wrong_metadata_shape_is_refused_before_any_broadcast():
    model, tok = tiny()
    with serving(copy.deepcopy(model), tok, log=lambda m: None) as srv:
        client = GlooSyncClient(srv.url, token=srv.token, group_port=free_port(), group_timeout_s=5)
        client.init_communicator()
        try:
            t = model.state_dict()["lm_head.weight"]
            bucket = sc.flattened_bucket([("lm_head.weight", t.detach().reshape(t.shape[1], t.shape[0]))])
            with pytest.raises(SyncClientError, match=r"HTTP 400.*shape"):
                client.update_flattened_params(bucket.get_metadata(), bucket.get_flattened_tensor())
        finally:
            client.close_communicator()


def test_world_size_mismatch_and_no_communicator_are_refused():
    model, tok = tiny()
    with serving(copy.deepcopy(model), tok, world_size=2, log=lambda m: None) as srv:
        body = sc.init_communicator_body("127.0.0.1", free_port(), 2)
        r = requests.post(f"{srv.url}/init_communicator/", headers=auth(srv), json=body, timeout=10)
        assert r.status_code == 422 and "world_size 2 != server ranks 2 + 1" in r.json()["message"]
        r = requests.post(f"{srv.url}/update_flattened_params/", headers=auth(srv), json={"metadatas": []}, timeout=10)
        assert r.status_code == 409
