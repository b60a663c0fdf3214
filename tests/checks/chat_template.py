"""Checks for the `chat-template` capability: the real coord-extended Qwen tokenizer, real
image files written with PIL, the real image processor. No mocks, except the planted
renderer drift, which replaces `coordjson.render` on purpose to prove the guard fires."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coordexp.format import coordjson
from coordexp.format import template as T
from coordexp.format.coord import coord_token_ids, load_tokenizer
from coordexp.format.prompts import COCO_80_CLASSES, PromptConfigError, system_prompt, user_prompt
from specgen import check

CAP = "chat-template"
REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "scripts" / "tools" / "inspect_chat_template.py"

OBJECTS = [
    {"desc": "cat", "bbox_2d": [10, 20, "<|coord_300|>", 400]},
    {"desc": "dog", "poly": [500, 100, 700, 150, 600, 300]},
]
DESC_FIRST_SENTENCE = '"desc" first, then one geometry key'
GEOMETRY_FIRST_SENTENCE = 'one geometry key ("bbox_2d" or "poly") first, then "desc"'
DESC_FIRST_ASK = 'with "desc" before its geometry'
GEOMETRY_FIRST_ASK = 'with its geometry ("bbox_2d" or "poly") before "desc"'


def write_image(path: Path, width: int, height: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return str(path)


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("chat_template_images")
    return {
        "64x96": write_image(d / "a.png", 64, 96, 1),
        "128x64": write_image(d / "b.png", 128, 64, 2),
        "128x64b": write_image(d / "c.png", 128, 64, 3),
        "32x32": write_image(d / "d.png", 32, 32, 4),
        "1024x768": write_image(d / "e.png", 1024, 768, 5),
    }


def record(images, key="64x96", objects=OBJECTS, **over):
    w, h = (int(v) for v in key.rstrip("b").split("x"))
    rec = {"images": [images[key]], "width": w, "height": h, "objects": objects}
    rec.update(over)
    return rec


def encode(tok, images):
    """The one-image sample as training encodes it, inside the check that reads it (a module fixture would
    run in whichever check asked first, so the others would execute no product code of their own)."""
    return T.encode_sample(record(images), tok, field_order="desc_first")


def ids_of(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


# ------------------------------------------------------------------ Dense Detection Messages


@check(CAP, "Dense Detection Messages", "Images come before the text")
def check_images_come_before_text(images):
    rec = {"images": [images["128x64"], images["128x64b"]], "width": 128, "height": 64, "objects": OBJECTS}
    msgs = T.build_messages(rec, field_order="desc_first")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant"]
    assert isinstance(msgs[0]["content"], str) and msgs[0]["content"] == system_prompt("desc_first")
    content = msgs[1]["content"]
    assert [c["type"] for c in content] == ["image", "image", "text"]
    assert [c["image"] for c in content[:2]] == [images["128x64"], images["128x64b"]]
    assert content[2]["text"] == user_prompt("desc_first")


@check(CAP, "Dense Detection Messages", "The assistant text is strict-parsed CoordJSON")
def check_assistant_text_is_strict_coordjson(images):
    msgs = T.build_messages(record(images), field_order="geometry_first")
    (item,) = msgs[2]["content"]
    text = item["text"]
    assert text == coordjson.render(OBJECTS, "geometry_first")
    assert text.startswith('{"objects": [{"bbox_2d": [<|coord_10|>, ')  # geometry first, bare tokens
    parsed = coordjson.parse(text, mode="strict", field_order="geometry_first")
    assert [(o.desc, o.geometry, o.values) for o in parsed.objects] == [
        ("cat", "bbox_2d", (10, 20, 300, 400)),
        ("dog", "poly", (500, 100, 700, 150, 600, 300)),
    ]


@check(CAP, "Dense Detection Messages", "Renderer drift fails before tokenization")
@pytest.mark.reach_exception(
    "the drift guard fires only on a defect in coordexp.format.coordjson.render (planted here): no input reaches it"
)
@pytest.mark.parametrize("drift", ["object_lost", "junk_after"])
def check_renderer_drift_fails(images, monkeypatch, drift):
    real = coordjson.render

    def drifting(objects, field_order):
        if drift == "object_lost":
            return real(objects[:1], field_order)
        return real(objects, field_order) + " done"

    monkeypatch.setattr(coordjson, "render", drifting)
    with pytest.raises(T.TemplateError, match=r"^sample-7: .*renderer and parser disagree"):
        T.build_messages(record(images), field_order="desc_first", source="sample-7")


@check(CAP, "Dense Detection Messages", "Relative image paths are refused")
def check_relative_image_paths_refused():
    rec = {"images": ["img/a.png"], "width": 64, "height": 96, "objects": []}
    with pytest.raises(T.TemplateError, match=r"images\[0\]: 'img/a.png' is not an absolute path.*JSONL loader"):
        T.build_messages(rec, field_order="desc_first")


# ------------------------------------------------------------------ Fixed Dense Prompts


@check(CAP, "Fixed Dense Prompts", "Field order is stated in both prompts")
def check_field_order_in_both_prompts():
    sd, ud = system_prompt("desc_first"), user_prompt("desc_first")
    sg, ug = system_prompt("geometry_first"), user_prompt("geometry_first")
    assert DESC_FIRST_SENTENCE in sd and DESC_FIRST_ASK in ud
    assert GEOMETRY_FIRST_SENTENCE in sg and GEOMETRY_FIRST_ASK in ug
    for p in (sd, ud):
        assert GEOMETRY_FIRST_SENTENCE not in p and GEOMETRY_FIRST_ASK not in p
    for p in (sg, ug):
        assert DESC_FIRST_SENTENCE not in p and DESC_FIRST_ASK not in p
    # the sentences themselves put the keys in the stated order
    assert DESC_FIRST_ASK.index('"desc"') < DESC_FIRST_ASK.index("geometry")
    assert GEOMETRY_FIRST_ASK.index("geometry") < GEOMETRY_FIRST_ASK.index('"desc"')


@check(CAP, "Fixed Dense Prompts", "The system prompt states the output contract")
def check_system_prompt_contract():
    s = system_prompt("desc_first", "sorted", "default")
    for phrase in (
        'exactly one key, "objects"',
        "x1 <= x2 and y1 <= y2",
        "starting at the top-most (then left-most) vertex and going clockwise",
        "bare, unquoted token <|coord_N|> with N an integer in [0, 999]",
        "single line",
        "(minY, minX)",
        '{"objects": []}',
    ):
        assert phrase in s, phrase


@check(CAP, "Fixed Dense Prompts", "The ordering rule follows object ordering")
def check_ordering_rule_follows_object_ordering():
    for fo in ("desc_first", "geometry_first"):
        for p in (system_prompt(fo, "random"), user_prompt(fo, "random")):
            assert "order of the records is unrestricted" in p
            assert "minY" not in p
        for p in (system_prompt(fo, "sorted"), user_prompt(fo, "sorted")):
            assert "(minY, minX)" in p and "unrestricted" not in p


@check(CAP, "Fixed Dense Prompts", "The coco_80 variant lists the 80 COCO classes")
def check_coco80_variant():
    assert len(COCO_80_CLASSES) == 80 == len(set(COCO_80_CLASSES))
    listing = ", ".join(COCO_80_CLASSES)
    s, u = (
        system_prompt("geometry_first", prompt_variant="coco_80"),
        user_prompt("geometry_first", prompt_variant="coco_80"),
    )
    assert f"must be exactly one canonical class name from this list of 80 COCO classes: {listing}." in s
    assert f'Restrict "desc" to this COCO-80 class list: {listing}.' in u
    assert COCO_80_CLASSES[0] == "person" and COCO_80_CLASSES[-1] == "toothbrush"
    multi = [c for c in COCO_80_CLASSES if " " in c]
    assert len(multi) >= 15
    for p in (system_prompt("geometry_first"), user_prompt("geometry_first")):
        assert not [c for c in multi if c in p]


@check(CAP, "Fixed Dense Prompts", "Unknown prompt settings are refused")
@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"field_order": "desc_last"}, "field_order"),
        ({"field_order": "desc_first", "object_ordering": "shuffled"}, "object_ordering"),
        ({"field_order": "desc_first", "prompt_variant": "lvis"}, "prompt_variant"),
    ],
)
def check_unknown_prompt_settings(kwargs, name):
    for fn in (system_prompt, user_prompt):
        with pytest.raises(PromptConfigError, match=rf"^{name}: unknown value .*; use one of "):
            fn(**kwargs)


# ------------------------------------------------------------------ Qwen3-VL Chat Rendering


@check(CAP, "Qwen3-VL Chat Rendering", "Exact rendered layout")
def check_exact_rendered_layout(tok, images):
    encoded = encode(tok, images)
    expected = (
        "<|im_start|>system\n"
        + system_prompt("desc_first")
        + "<|im_end|>\n"
        + "<|im_start|>user\n<|vision_start|>"
        + "<|image_pad|>" * 6
        + "<|vision_end|>"
        + user_prompt("desc_first")
        + "<|im_end|>\n"
        + "<|im_start|>assistant\n"
        + coordjson.render(OBJECTS, "desc_first")
        + "<|im_end|>"
    )
    assert encoded.text == expected
    assert encoded.text.endswith("<|im_end|>") and not encoded.text.endswith("\n")


def _vision_spans(tok, ids):
    start, end = tok.convert_tokens_to_ids(["<|vision_start|>", "<|vision_end|>"])
    opens = [i for i, t in enumerate(ids) if t == start]
    closes = [i for i, t in enumerate(ids) if t == end]
    assert len(opens) == len(closes)
    return [ids[a + 1 : b] for a, b in zip(opens, closes, strict=True)]


@check(CAP, "Qwen3-VL Chat Rendering", "Vision placeholder count matches the image grid")
def check_vision_placeholder_count(tok, images):
    pad = tok.convert_tokens_to_ids("<|image_pad|>")
    one = T.encode_sample(record(images), tok, field_order="desc_first")
    two_rec = {"images": [images["128x64"], images["128x64b"]], "width": 128, "height": 64, "objects": OBJECTS}
    two = T.encode_sample(two_rec, tok, field_order="desc_first")
    for enc, grid, rows in ((one, [[1, 6, 4]], 24), (two, [[1, 4, 8], [1, 4, 8]], 64)):
        assert enc.image_grid_thw.tolist() == grid
        spans = _vision_spans(tok, enc.input_ids)
        assert [len(s) for s in spans] == [t * h * w // 4 for t, h, w in grid]
        assert all(set(s) == {pad} for s in spans)
        assert enc.input_ids.count(pad) == sum(t * h * w // 4 for t, h, w in grid)
        assert tuple(enc.pixel_values.shape) == (rows, 1536)


@check(CAP, "Qwen3-VL Chat Rendering", "Chat-control tokens in content are refused")
@pytest.mark.parametrize("token", ["<|im_end|>", "<|im_start|>", "<|image_pad|>"])
def check_control_tokens_refused(images, token):
    bad = [{"desc": f"cat{token}", "bbox_2d": [1, 2, 3, 4]}]
    msgs = T.build_messages(record(images, objects=bad), field_order="desc_first")
    with pytest.raises(
        T.TemplateError, match=r"messages\[2\]: content contains the chat-control token " + token.replace("|", r"\|")
    ):
        T.render_chat(msgs, [6])
    msgs = T.build_messages(record(images), field_order="desc_first")
    msgs[1]["content"][-1]["text"] += token
    with pytest.raises(T.TemplateError, match=r"messages\[1\]: content contains the chat-control token"):
        T.render_chat(msgs, [6])


@check(CAP, "Qwen3-VL Chat Rendering", "The template serves HF-style callers")
def check_template_serves_hf_callers(tok, images):
    msgs = T.build_messages(record(images), field_order="desc_first", with_assistant=False)
    via_hf = tok.apply_chat_template(
        msgs, chat_template=T.QWEN3_VL_CHAT_TEMPLATE, add_generation_prompt=True, tokenize=False
    )
    assert via_hf.count("<|image_pad|>") == 1
    assert via_hf == T.render_generation_prompt(msgs, [1])


# ------------------------------------------------------------------ Images Are Never Resized


@check(CAP, "Images Are Never Resized", "max_pixels is a hard cap")
def check_max_pixels_hard_cap(tok, images, tmp_path):
    over = {"images": [write_image(tmp_path / "big.png", 1024, 800)], "width": 1024, "height": 800, "objects": []}
    with pytest.raises(
        T.TemplateError,
        match=r"^big-1: width\*height = 1024x800 = 819200 pixels exceeds "
        r"max_pixels 786432 .*never resized",
    ):
        T.encode_sample(over, tok, field_order="desc_first", max_pixels=786432, source="big-1")
    at_cap = record(images, key="1024x768", objects=[])
    enc = T.encode_sample(at_cap, tok, field_order="desc_first", max_pixels=786432)
    assert enc.image_token_counts == (768,)
    assert enc.image_grid_thw.tolist() == [[1, 48, 64]]


@check(CAP, "Images Are Never Resized", "The processor keeps the pre-resized grid")
def check_processor_keeps_grid(images):
    from transformers import Qwen2VLImageProcessorPil

    proc = T.load_image_processor()
    assert (proc.patch_size, proc.merge_size, proc.temporal_patch_size, proc.do_resize) == (16, 2, 2, False)
    assert list(proc.image_mean) == [0.5, 0.5, 0.5] and list(proc.image_std) == [0.5, 0.5, 0.5]
    img = Image.open(images["32x32"]).convert("RGB")
    out = proc(images=[img], return_tensors="pt")
    assert out["image_grid_thw"].tolist() == [[1, 2, 2]]
    assert T.image_token_count(32, 32) == 1
    # the trap this guards against: the same settings with resizing on upscale to min_pixels
    resizing = Qwen2VLImageProcessorPil(
        patch_size=16, merge_size=2, temporal_patch_size=2, min_pixels=4096, max_pixels=786432
    )
    assert resizing(images=[img], return_tensors="pt")["image_grid_thw"].tolist() == [[1, 4, 4]]


@check(CAP, "Images Are Never Resized", "Sides must be multiples of 32")
def check_sides_multiple_of_32(tok, tmp_path):
    rec = {"images": [write_image(tmp_path / "odd.png", 48, 64)], "width": 48, "height": 64, "objects": []}
    with pytest.raises(T.TemplateError, match=r"width: 48 is not a multiple of 32"):
        T.encode_sample(rec, tok, field_order="desc_first")


@check(CAP, "Images Are Never Resized", "The recorded size must match the image on disk")
def check_recorded_size_matches_disk(tok, images):
    rec = record(images, width=64, height=64)
    with pytest.raises(T.TemplateError, match=r"images\[0\]: .*a\.png is 64x96 on disk but the record says 64x64"):
        T.encode_sample(rec, tok, field_order="desc_first")


# ------------------------------------------------------------------ Training Labels


@check(CAP, "Training Labels", "The label boundary sits right after the assistant header")
def check_label_boundary(tok, images):
    encoded = encode(tok, images)
    n = encoded.prompt_len
    assert T.decode_pieces(tok, encoded.input_ids[n - 3 : n]) == ["<|im_start|>", "assistant", "\n"]
    assert all(x == T.IGNORE_INDEX for x in encoded.labels[:n])
    assert encoded.labels[n:] == encoded.input_ids[n:]
    assert n == next(i for i, x in enumerate(encoded.labels) if x != T.IGNORE_INDEX)
    assert T.decode(tok, encoded.input_ids[n:]).startswith('{"objects": [')


@check(CAP, "Training Labels", "The closing im_end is supervised")
def check_im_end_supervised(tok, images):
    encoded = encode(tok, images)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert encoded.input_ids[-1] == im_end and encoded.labels[-1] == im_end
    supervised = [x for x in encoded.labels if x != T.IGNORE_INDEX]
    assert supervised.count(im_end) == 1 and supervised[-1] == im_end
    assert encoded.text.endswith("]}<|im_end|>")


@check(CAP, "Training Labels", "Labels are not shifted")
def check_labels_not_shifted(tok, images):
    encoded = encode(tok, images)
    assert len(encoded.labels) == len(encoded.input_ids)
    pairs = [(lab, tid) for lab, tid in zip(encoded.labels, encoded.input_ids, strict=True) if lab != T.IGNORE_INDEX]
    assert pairs and all(lab == tid for lab, tid in pairs)


@check(CAP, "Training Labels", "The split tokenization equals the joint tokenization")
def check_split_equals_joint(tok, images):
    encoded = encode(tok, images)
    assert encoded.input_ids == ids_of(tok, encoded.text)
    assert T.decode(tok, encoded.input_ids) == encoded.text


@check(CAP, "Training Labels", "A negative image supervises the empty answer")
def check_negative_image(tok, images):
    enc = T.encode_sample(record(images, objects=[]), tok, field_order="geometry_first")
    assert T.decode(tok, enc.input_ids[enc.prompt_len :]) == '{"objects": []}<|im_end|>'
    assert [x for x in enc.labels if x != T.IGNORE_INDEX] == ids_of(tok, '{"objects": []}<|im_end|>')


# ------------------------------------------------------------------ Open Generation Prompt


def rollout_prompt_ids(rec, tok, **settings) -> list[int]:
    """The generation prompt as production builds it: the rollout request of the record's messages,
    tokenized by the rollout backend (the learner and the server receive this request)."""
    from coordexp.generation.hf_backend import encode_request
    from coordexp.generation.request import from_messages

    return encode_request(from_messages(T.build_messages(rec, with_assistant=False, **settings)), tok).prompt_ids


@check(CAP, "Open Generation Prompt", "The generation prompt is open")
def check_generation_prompt_open(tok, images):
    ids = rollout_prompt_ids(record(images), tok, field_order="desc_first")
    header = ids_of(tok, "<|im_start|>assistant\n")
    assert ids[-len(header) :] == header
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert ids.count(im_end) == 2
    last_im_end = max(i for i, t in enumerate(ids) if t == im_end)
    assert last_im_end < len(ids) - len(header)


@check(CAP, "Open Generation Prompt", "Trailing assistant turns are stripped")
def check_trailing_assistant_stripped(images):
    msgs = T.build_messages(record(images), field_order="desc_first")
    bare = T.render_generation_prompt(msgs[:2], [6])
    assert bare.endswith("<|im_start|>assistant\n")
    extra = msgs + [{"role": "assistant", "content": "second"}]
    for m in (msgs, extra):
        text = T.render_generation_prompt(m, [6])
        assert text == bare
        assert coordjson.render(OBJECTS, "desc_first") not in text and "second" not in text


@check(CAP, "Open Generation Prompt", "Learner and rollout prompts agree")
@pytest.mark.parametrize("field_order,variant", [("desc_first", "default"), ("geometry_first", "coco_80")])
def check_learner_rollout_prompt_agree(tok, images, field_order, variant):
    rec = record(images)
    enc = T.encode_sample(rec, tok, field_order=field_order, prompt_variant=variant)
    gen = rollout_prompt_ids(rec, tok, field_order=field_order, prompt_variant=variant)
    assert gen == enc.input_ids[: enc.prompt_len]
    assert len(gen) == enc.prompt_len


# ------------------------------------------------------------------ Decoding Keeps Special Tokens


@check(CAP, "Decoding Keeps Special Tokens", "Decode keeps coord tokens and im_end")
def check_decode_keeps_special_tokens(tok, images):
    encoded = encode(tok, images)
    ids = encoded.input_ids[encoded.prompt_len :]
    text = T.decode(tok, ids)
    for k in (10, 20, 300, 400, 500, 100, 700, 150, 600):
        assert f"<|coord_{k}|>" in text
    assert text.endswith("<|im_end|>")
    skipped = tok.decode(ids, skip_special_tokens=True)
    assert "<|coord_" not in skipped and "<|im_end|>" not in skipped  # what the helper protects against


@check(CAP, "Decoding Keeps Special Tokens", "The per-token frame joins to the full decode")
def check_decode_frame_joins(tok, images):
    encoded = encode(tok, images)
    frame = T.decode_frame(tok, encoded.input_ids)
    assert "".join(frame.pieces) == frame.text == T.decode(tok, encoded.input_ids) == encoded.text
    assert len(frame.offsets) == len(frame.pieces) + 1 and frame.offsets[-1] == len(frame.text)
    coord_ids = set(coord_token_ids(tok))
    n_coords = 0
    for i, tid in enumerate(encoded.input_ids):
        piece = frame.text[frame.offsets[i] : frame.offsets[i + 1]]
        assert piece == frame.pieces[i]
        if tid in coord_ids:
            assert piece == f"<|coord_{tid - min(coord_ids)}|>"
            n_coords += 1
    assert n_coords == 4 + 6


@check(CAP, "Decoding Keeps Special Tokens", "A frame that would lie is refused")
def check_decode_frame_refuses_split_chars(tok, images):
    enc = T.encode_sample(
        record(images, objects=[{"desc": "cat 🐱", "bbox_2d": [1, 2, 3, 4]}]), tok, field_order="desc_first"
    )
    pieces = T.decode_pieces(tok, enc.input_ids)
    first_bad = next(i for i, p in enumerate(pieces) if "\ufffd" in p)
    with pytest.raises(T.DecodeFrameError, match=rf"at token {first_bad} \(id {enc.input_ids[first_bad]},"):
        T.decode_frame(tok, enc.input_ids)


# ------------------------------------------------------------------ Stateless Encoding


@check(CAP, "Stateless Encoding", "The system prompt is restored after a failure")
def check_system_prompt_restored(tok, images, tmp_path):
    before = (len(tok), tok.chat_template, coord_token_ids(tok))
    first = T.encode_sample(record(images), tok, field_order="geometry_first", prompt_variant="coco_80")
    first_system = first.text.split("<|im_end|>", 1)[0]
    # phrases written out here, not recomputed with system_prompt(): a prompt cached from an
    # earlier call would otherwise agree with itself
    assert GEOMETRY_FIRST_SENTENCE in first_system and "list of 80 COCO classes" in first_system
    over = {"images": [write_image(tmp_path / "big.png", 1024, 800)], "width": 1024, "height": 800, "objects": []}
    with pytest.raises(T.TemplateError):
        T.encode_sample(over, tok, field_order="geometry_first", prompt_variant="coco_80")
    last = T.encode_sample(record(images), tok, field_order="desc_first")
    system_turn = last.text.split("<|im_end|>", 1)[0]
    assert system_turn == "<|im_start|>system\n" + system_prompt("desc_first", "sorted", "default")
    assert DESC_FIRST_SENTENCE in system_turn and GEOMETRY_FIRST_SENTENCE not in system_turn
    assert "COCO" not in last.text and "hair drier" not in last.text
    assert (len(tok), tok.chat_template, coord_token_ids(tok)) == before


# ------------------------------------------------------------------ Chat Template Inspection Tool


def _load_tool():
    spec = importlib.util.spec_from_file_location("inspect_chat_template", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _write_jsonl(tmp_path, images, lines):
    import json

    (tmp_path / "img").mkdir(exist_ok=True)
    Image.open(images["64x96"]).save(tmp_path / "img" / "a.png")
    rows = [json.dumps(x) if isinstance(x, dict) else x for x in lines]
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@check(CAP, "Chat Template Inspection Tool", "A sample is shown with its label mask")
def check_tool_shows_label_mask(tok, images, tmp_path, capsys):
    rel = {"images": ["img/a.png"], "width": 64, "height": 96, "objects": OBJECTS}
    path = _write_jsonl(tmp_path, images, [dict(rel, objects=[]), rel])
    rc = _load_tool().main([str(path), "--index", "1", "--field-order", "geometry_first"])
    out = capsys.readouterr().out
    assert rc == 0
    enc = T.encode_sample(dict(rel, images=[str(tmp_path / "img" / "a.png")]), tok, field_order="geometry_first")
    n_sup = len(enc.input_ids) - enc.prompt_len
    assert f"sample: {path}:2 (index 1)" in out
    assert f"tokens: {len(enc.input_ids)} total, prompt_len {enc.prompt_len}, supervised {n_sup}" in out
    header, rendered = out.split(" runs collapsed) ---\n", 1)
    assert rendered.count("⟦") == 1 and rendered.count("⟧") == 1
    inside = rendered[rendered.index("⟦") + 1 : rendered.index("⟧")]
    assert inside == coordjson.render(OBJECTS, "geometry_first") + "<|im_end|>"
    assert rendered[: rendered.index("⟦")].endswith("<|im_start|>assistant\n")
    assert rendered.startswith("<|im_start|>system\n") and rendered.endswith("⟧\n")
    assert "<|vision_start|><|image_pad|>x6<|vision_end|>" in rendered


@check(CAP, "Chat Template Inspection Tool", "Bad input exits 2 with one line")
def check_tool_bad_input(images, tmp_path):
    good = {"images": ["img/a.png"], "width": 64, "height": 96, "objects": []}
    big = {"images": ["img/a.png"], "width": 1024, "height": 800, "objects": []}
    path = _write_jsonl(tmp_path, images, [good, "{not json", big])
    cases = [
        ([str(tmp_path / "missing.jsonl")], "missing.jsonl: no such file"),
        ([str(path), "--index", "1"], f"{path}:2: not valid JSON"),
        ([str(path), "--index", "7"], f"{path}: --index 7 is past the end (3 records)"),
        ([str(path), "--index", "2"], f"{path}:3: width*height = 1024x800 = 819200 pixels exceeds max_pixels 786432"),
    ]
    for argv, expected in cases:
        proc = subprocess.run([sys.executable, str(TOOL), *argv], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, (argv, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("inspect_chat_template: "), proc.stderr
        assert expected in lines[0]
        assert "Traceback" not in proc.stderr and proc.stdout == ""
