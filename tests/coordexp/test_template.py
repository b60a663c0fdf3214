"""Unit tests for coordexp.format.template and coordexp.format.prompts beyond the spec scenarios:
message validation, edge records, determinism, the processor guard, the tool's token view."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coordexp.format import template as T
from coordexp.format.coord import load_tokenizer
from coordexp.format.prompts import system_prompt, user_prompt

REPO = Path(__file__).resolve().parents[2]
OBJ = [{"desc": "cat", "bbox_2d": [1, 2, 3, 4]}]


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


@pytest.fixture(scope="module")
def img(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "a.png"
    Image.fromarray(np.full((64, 96, 3), 127, dtype=np.uint8)).save(path)
    return str(path)


def rec(img, **over):
    r = {"images": [img], "width": 96, "height": 64, "objects": OBJ}
    r.update(over)
    return r


def user(text="u", n_images=1):
    return {"role": "user", "content": [{"type": "image", "image": "/x.png"}] * n_images + [{"type": "text", "text": text}]}


# ---------------------------------------------------------------- render_chat validation

@pytest.mark.parametrize("messages,counts,match", [
    ([], [], r"^messages: empty"),
    ([user(), {"role": "system", "content": "s"}], [1], r"messages\[1\]: a system turn is only allowed first"),
    ([{"role": "tool", "content": "x"}], [], r"messages\[0\]\.role: 'tool'"),
    ([user(), {"role": "assistant", "content": [{"type": "image", "image": "/y.png"}]}], [1, 1],
     r"messages\[1\]\.content\[0\]: images are only allowed in user turns"),
    ([user()], [], r"hold 1 image items but 0 image token counts"),
    ([user()], [0], r"image_token_counts\[0\]: 0; must be a positive int"),
    ([user()], [True], r"image_token_counts\[0\]: True"),
    ([{"role": "user", "content": [{"type": "video"}]}], [], r"content\[0\]\.type: 'video'"),
    ([{"role": "user", "content": 3}], [], r"messages\[0\]\.content: must be a string or a list"),
])
def test_render_chat_refuses_bad_messages(messages, counts, match):
    with pytest.raises(T.TemplateError, match=match):
        T.render_chat(messages, counts)


def test_render_chat_string_content_and_multiple_turns():
    msgs = [{"role": "system", "content": "S"}, user("U", 2), {"role": "assistant", "content": "A"}]
    assert T.render_chat(msgs, [2, 3]) == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\n"
        "<|vision_start|><|image_pad|><|image_pad|><|vision_end|>"
        "<|vision_start|><|image_pad|><|image_pad|><|image_pad|><|vision_end|>U<|im_end|>\n"
        "<|im_start|>assistant\nA<|im_end|>"
    )


def test_generation_prompt_needs_a_user_turn():
    with pytest.raises(T.TemplateError, match="must end with a user turn"):
        T.render_generation_prompt([{"role": "system", "content": "S"}, {"role": "assistant", "content": "A"}], [])


def test_strip_trailing_assistant_keeps_inner_assistant_turns():
    msgs = [user("a"), {"role": "assistant", "content": "x"}, user("b"), {"role": "assistant", "content": "y"}]
    assert T.strip_trailing_assistant(msgs) == msgs[:3]
    assert len(msgs) == 4  # the input is not mutated


# ---------------------------------------------------------------- records

def test_record_without_images_has_no_pixels(tok):
    enc = T.encode_sample({"images": [], "width": 96, "height": 64, "objects": OBJ}, tok, field_order="desc_first")
    assert enc.pixel_values is None and enc.image_grid_thw is None and enc.image_token_counts == ()
    assert "<|vision_start|>" not in enc.text
    assert enc.text.startswith("<|im_start|>system\n") and "<|im_start|>user\nDetect every object" in enc.text


@pytest.mark.parametrize("over,match", [
    ({"width": True}, r"^r1: width: True; must be a positive int"),
    ({"height": 0}, r"^r1: height: 0"),
    ({"height": "64"}, r"^r1: height: '64'"),
    ({"objects": None}, r"^r1: objects: required"),
    ({"images": "a.png"}, r"^r1: images: must be a list"),
    ({"objects": [{"desc": "cat", "bbox_2d": [1, 2, 3]}]}, r"^r1: objects\[0\]\.bbox_2d: needs 4 values"),
])
def test_bad_records_name_the_sample_and_key(tok, img, over, match):
    with pytest.raises(T.TemplateError, match=match):
        T.encode_sample(rec(img, **over), tok, field_order="desc_first", source="r1")


def test_unreadable_image(tok, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(T.TemplateError, match=r"images\[0\]: cannot open .*broken\.png"):
        T.encode_sample({"images": [str(bad)], "width": 96, "height": 64, "objects": []}, tok, field_order="desc_first")


def test_encoding_is_deterministic(tok, img):
    a = T.encode_sample(rec(img), tok, field_order="geometry_first", prompt_variant="coco_80")
    b = T.encode_sample(rec(img), tok, field_order="geometry_first", prompt_variant="coco_80")
    assert (a.input_ids, a.labels, a.prompt_len, a.text) == (b.input_ids, b.labels, b.prompt_len, b.text)
    assert bool((a.pixel_values == b.pixel_values).all())


def test_pixel_values_are_normalized_with_half_mean_and_std(tok, img):
    enc = T.encode_sample(rec(img), tok, field_order="desc_first")
    # a flat 127 image: (127/255 - 0.5) / 0.5 everywhere
    assert np.allclose(enc.pixel_values.numpy(), (127 / 255 - 0.5) / 0.5, atol=1e-6)
    assert enc.image_grid_thw.tolist() == [[1, 4, 6]] and enc.image_token_counts == (6,)


def test_a_foreign_image_processor_is_refused(tok, img):
    from transformers import Qwen2VLImageProcessorPil

    qwen2 = Qwen2VLImageProcessorPil()  # patch 14, resizing on: the Qwen2-VL defaults
    with pytest.raises(T.TemplateError, match=r"image processor .* = \(14, 2, 2, True\), expected \(16, 2, 2, False\)"):
        T.encode_sample(rec(img), tok, field_order="desc_first", image_processor=qwen2)


def test_unknown_field_order_is_refused_before_rendering(img):
    with pytest.raises(T.TemplateError, match="^record: field_order: unknown value 'desc_last'"):
        T.build_messages(rec(img), field_order="desc_last")


def test_prompts_are_fixed_strings():
    # the same settings give the same bytes, and all eight combinations differ
    combos = [(f, o, v) for f in ("desc_first", "geometry_first") for o in ("sorted", "random")
              for v in ("default", "coco_80")]
    systems = {system_prompt(*c) for c in combos}
    users = {user_prompt(*c) for c in combos}
    assert len(systems) == len(users) == 8
    assert system_prompt("desc_first") == system_prompt("desc_first", "sorted", "default")
    assert "\n" not in user_prompt("desc_first") and "<|" not in user_prompt("desc_first")


def test_image_token_count():
    assert T.image_token_count(1024, 768) == 768
    assert T.image_token_count(32, 64) == 2
    assert T.MAX_PIXELS == 786432


# ---------------------------------------------------------------- decode helpers

def test_decode_frame_of_nothing(tok):
    frame = T.decode_frame(tok, [])
    assert frame.text == "" and frame.pieces == () and frame.offsets == (0,)


# ---------------------------------------------------------------- inspection tool

def _tool():
    spec = importlib.util.spec_from_file_location("inspect_chat_template",
                                                  REPO / "scripts" / "tools" / "inspect_chat_template.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tool_token_table(tok, img, tmp_path, capsys):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(rec(img)) + "\n")  # an absolute path stays as it is
    assert _tool().main([str(path), "--tokens"]) == 0
    out = capsys.readouterr().out
    enc = T.encode_sample(rec(img), tok, field_order="desc_first")
    rows = out.split("--- tokens (position, id, label, piece) ---\n", 1)[1].splitlines()
    assert len(rows) == len(enc.input_ids)
    last = rows[-1].split()
    assert last[:3] == [str(len(enc.input_ids) - 1), "151645", "151645"]
    first_sup = rows[enc.prompt_len].split()
    assert first_sup[2] == first_sup[1] and rows[enc.prompt_len - 1].split()[2] == "-100"


def test_tool_blank_line_and_non_object(tmp_path, capsys):
    path = tmp_path / "d.jsonl"
    path.write_text('{"images": []}\n\n[1, 2]\n')
    tool = _tool()
    assert tool.main([str(path), "--index", "1"]) == 2
    assert capsys.readouterr().err == f"inspect_chat_template: {path}:2: blank line; a JSONL file holds one JSON object per line\n"
    assert tool.main([str(path), "--index", "2"]) == 2
    assert "3: a record must be a JSON object, got list" in capsys.readouterr().err


def test_masked_text_marks_every_supervised_run(tok):
    def one(text):
        (tid,) = tok(text, add_special_tokens=False)["input_ids"]
        return tid

    pad = tok.convert_tokens_to_ids("<|image_pad|>")
    ids = [one("a"), one(" b"), pad, pad, one("c"), one(" d")]
    labels = [-100, ids[1], -100, -100, -100, ids[5]]
    assert _tool().masked_text(tok, ids, labels) == "a⟦ b⟧<|image_pad|>x2c⟦ d⟧"
