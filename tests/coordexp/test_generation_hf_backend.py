"""HFBackend: prompt ids equal the learner's, greedy equals a no-cache reference decoder,
EOS append, length gate, seeds and RNG restoration, train mode restored."""

from __future__ import annotations

import pytest
import torch

from coordexp.format.template import encode_sample
from coordexp.generation.backend import IM_END_ID, RolloutBackend
from coordexp.generation.hf_backend import (
    HFBackend,
    RolloutBackendError,
    RolloutLengthError,
    encode_request,
    length_gate,
)
from coordexp.generation.request import DecodeSettings
from tests.helpers.tiny_rollout import make_image, reference_greedy, request, tiny


@pytest.fixture(scope="module")
def img(tmp_path_factory):
    return make_image(tmp_path_factory.mktemp("img") / "a.png")


@pytest.fixture(scope="module")
def backend():
    model, tok = tiny()
    return HFBackend(model, tok)


def test_is_a_rollout_backend(backend):
    assert isinstance(backend, RolloutBackend) and backend.name == "hf"


def test_prompt_ids_equal_the_learners(backend, img):
    _, tok = tiny()
    rec = {"images": [img], "width": 64, "height": 64, "objects": []}
    from coordexp.format.template import build_messages
    from coordexp.generation.request import from_messages

    req = from_messages(build_messages(rec, field_order="desc_first", with_assistant=False))
    enc = encode_request(req, tok)
    learner = encode_sample(rec, tok, field_order="desc_first")
    assert enc.prompt_ids == learner.input_ids[: learner.prompt_len]
    assert enc.image_grid_thw.tolist() == [[1, 4, 4]]


def test_greedy_matches_a_no_cache_reference_with_repetition_penalty(backend, img):
    model, tok = tiny()
    req = request(img)
    out = backend.generate([req], DecodeSettings(max_tokens=6, repetition_penalty=1.3), seed_base=1)[0]
    enc = encode_request(req, tok)
    ref = reference_greedy(model, enc.prompt_ids, enc.pixel_values, enc.image_grid_thw, 6, 1.3, IM_END_ID)
    body = out.token_ids[:-1] if out.finish_reason == "length" else out.token_ids
    assert body == ref and out.prompt_token_ids == enc.prompt_ids
    assert model.config.text_config.use_cache is False  # the cache was a generate argument only


def test_eos_is_appended_when_max_tokens_runs_out(backend, img):
    out = backend.generate([request(img)], DecodeSettings(max_tokens=3), seed_base=1)[0]
    assert len(out.token_ids) == 4 and out.token_ids[-1] == IM_END_ID and out.finish_reason == "length"
    assert out.token_ids.count(IM_END_ID) == 1


def test_length_gate_names_both_numbers_and_allows_the_boundary():
    length_gate(10, 6, 16)
    with pytest.raises(
        RolloutLengthError,
        match=r"prompt_len 10 \+ max_new_tokens 7 = 17 exceeds "
        r"max_position_embeddings 16",
    ):
        length_gate(10, 7, 16)


def test_length_gate_runs_before_any_generation(backend, img, monkeypatch):
    model, tok = tiny()
    n0 = len(encode_request(request(None), tok).prompt_ids)  # request 0 sits exactly at the limit
    calls = []
    monkeypatch.setattr(model, "generate", lambda *a, **k: calls.append(1))
    with pytest.raises(RolloutLengthError, match="rollout request 1"):
        backend.generate([request(None), request(img)], DecodeSettings(max_tokens=32768 - n0), seed_base=1)
    assert calls == []


def test_sampling_is_seeded_and_restores_the_callers_rng(backend, img):
    s = DecodeSettings(max_tokens=8, temperature=1.0, top_k=-1)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = backend.generate([request(img)] * 2, s, seed_base=7)
    assert torch.equal(before, torch.random.get_rng_state())
    b = backend.generate([request(img)] * 2, s, seed_base=7)
    c = backend.generate([request(img)], s, seed_base=7, request_offset=1)  # request 1 alone, same seed
    assert [o.token_ids for o in a] == [o.token_ids for o in b]
    assert c[0].token_ids == a[1].token_ids
    assert backend.last_seeds == [8]


def test_seeds_wrap_to_one_and_zero_is_refused(backend):
    backend.generate([request(None)], DecodeSettings(max_tokens=1), seed_base=2**31 - 1, request_offset=0)
    assert backend.last_seeds == [2**31 - 1]
    backend.generate([request(None)] * 2, DecodeSettings(max_tokens=1), seed_base=2**31 - 1)
    assert backend.last_seeds == [2**31 - 1, 1]
    with pytest.raises(RolloutBackendError, match="seed_base"):
        backend.generate([request(None)], DecodeSettings(max_tokens=1), seed_base=0)


def test_train_mode_is_restored(backend):
    model, _ = tiny()
    model.train()
    try:
        backend.generate([request(None)], DecodeSettings(max_tokens=1), seed_base=1)
        assert model.training
    finally:
        model.eval()


def test_bad_images_are_named(backend, tmp_path):
    bad = make_image(tmp_path / "odd.png", 50, 64)
    with pytest.raises(RolloutBackendError, match=r"rollout request 0 image 0.*multiple of 32"):
        backend.generate([request(bad)], DecodeSettings(max_tokens=1), seed_base=1)
    with pytest.raises(RolloutBackendError, match="cannot open|No such file"):
        backend.generate([request(str(tmp_path / "missing.png"))], DecodeSettings(max_tokens=1), seed_base=1)
