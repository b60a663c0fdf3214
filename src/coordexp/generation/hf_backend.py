"""Local HF rollouts: ``generate`` on a Qwen3-VL in this process (the CPU default backend).

A request is the same ``RolloutInferRequest``-shaped dict the server gets. Its prompt is
rendered with the project's chat template and tokenized exactly like the learner does
(``coordexp.format.template``): image items are opened, validated (multiple of 32, within
max_pixels, never resized) and expanded to their ``<|image_pad|>`` count, so the prompt
ids equal the first ``prompt_len`` ids of ``template.encode_sample`` of the same record.

Decoding (rollout-server-contract, HF Rollout Backend):
- greedy when temperature == 0, otherwise sampling with temperature/top_p/top_k
  (top_k -1 = off); ``repetition_penalty`` applied either way;
- stop at ``<|im_end|>``; if ``max_new_tokens`` runs out first, ``<|im_end|>`` is appended
  (``backend.ensure_eos``) and finish_reason is "length";
- the KV cache is on for generation only (``use_cache=True`` is a generate argument; the
  model config, which training reads, is not touched);
- the model runs in eval mode under no_grad and gets its train/eval mode back afterwards.

Length gate (rollout-server-contract, HF Rollout Length Gate): prompt_len + max_new_tokens must be <= the text model's
``max_position_embeddings``; every request is checked before any is generated, and a
failure names both numbers.

Seeds: request i of a call with ``seed_base`` b and ``request_offset`` o is generated under
torch.manual_seed(norm(b + o + i)), the seed a server call starting at that request gets;
so a request's rollout does not depend on how the batch was chunked. The caller's RNG
state (CPU and the model's CUDA device) is restored afterwards, so rollouts never shift
the training run's dropout or data order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from coordexp.format.template import (
    DECODE_KWARGS,
    IM_END,
    IMAGE_TOKEN_ID,
    MAX_PIXELS,
    MERGE_SIZE,
    TemplateError,
    check_images,
    load_image_processor,
    render_generation_prompt,
)
from coordexp.generation.backend import RolloutBackendError, RolloutOutput, ensure_eos
from coordexp.generation.request import SEED_MASK, DecodeSettings, call_seed, check_infer_request


class RolloutLengthError(RolloutBackendError):
    """prompt_len + max_new_tokens exceeds the model's max_position_embeddings."""


@dataclass
class PromptInputs:
    prompt_ids: list[int]
    pixel_values: Any = None  # torch.Tensor or None
    image_grid_thw: Any = None  # torch.Tensor (n_images, 3) or None


def _image_paths(messages: Sequence[dict]) -> list[str]:
    paths = []
    for msg in messages:
        content = msg.get("content")
        if isinstance(content, list):
            paths.extend(item["image"] for item in content if isinstance(item, dict) and item.get("type") == "image")
    return paths


def encode_request(
    request: dict, tokenizer, *, image_processor=None, max_pixels: int = MAX_PIXELS, sample: str = "request"
) -> PromptInputs:
    """Prompt ids (and pixels) of one infer request, tokenized as the learner tokenizes."""
    from PIL import Image

    try:
        check_infer_request(request, sample=sample)
    except ValueError as exc:
        raise RolloutBackendError(str(exc)) from None
    if request.get("images"):
        raise RolloutBackendError(
            f"{sample}: top-level 'images' is not supported; put image items in the user "
            "content (coordexp.generation.request.from_messages of template.build_messages does)"
        )
    messages = request["messages"]
    paths = _image_paths(messages)
    counts: list[int] = []
    try:
        for i, p in enumerate(paths):
            with Image.open(p) as im:
                w, h = im.size
            # The same validation the learner applies (multiple of 32, max_pixels, size on disk).
            counts += check_images(
                {"images": [p], "width": w, "height": h}, max_pixels=max_pixels, source=f"{sample} image {i}"
            )
        text = render_generation_prompt(messages, counts)
    except (OSError, TemplateError) as exc:
        raise RolloutBackendError(f"{sample}: {exc}") from None
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if not paths:
        return PromptInputs(ids)
    proc = image_processor if image_processor is not None else load_image_processor(max_pixels)
    images = []
    for p in paths:
        with Image.open(p) as im:
            images.append(im.convert("RGB"))
    px = proc(images=images, return_tensors="pt")
    got = [int(t * h * w) // MERGE_SIZE**2 for t, h, w in px["image_grid_thw"].tolist()]
    if got != counts:
        raise RolloutBackendError(f"{sample}: the image processor gives {got} image tokens, expected {counts}")
    return PromptInputs(ids, px["pixel_values"], px["image_grid_thw"])


def max_positions(model) -> int:
    cfg = model.config
    text = getattr(cfg, "text_config", None) or cfg
    return int(text.max_position_embeddings)


def length_gate(prompt_len: int, max_new_tokens: int, max_position_embeddings: int, *, sample: str = "request"):
    """Audit P1.3: fail fast instead of generating past the model's positions."""
    if prompt_len + max_new_tokens > max_position_embeddings:
        raise RolloutLengthError(
            f"{sample}: prompt_len {prompt_len} + max_new_tokens {max_new_tokens} = {prompt_len + max_new_tokens} "
            f"exceeds max_position_embeddings {max_position_embeddings}; lower rollout_matching.max_new_tokens "
            "or shorten the prompt"
        )


def _check_seed_base(seed_base) -> None:
    if isinstance(seed_base, bool) or not isinstance(seed_base, int) or not 1 <= seed_base <= SEED_MASK:
        raise RolloutBackendError(
            f"seed_base must be in 1..{SEED_MASK} (coordexp.generation.request.seed_base), "
            f"got {seed_base!r}; 0 means 'unseeded' to ms-swift"
        )


def generation_config(settings: DecodeSettings, im_end_id: int, pad_id: int):
    """An explicit GenerationConfig, so nothing leaks in from the model's generation_config.json."""
    from transformers import GenerationConfig

    sample = settings.temperature > 0
    kw = dict(
        max_new_tokens=settings.max_tokens,
        do_sample=sample,
        num_beams=1,
        repetition_penalty=float(settings.repetition_penalty),
        eos_token_id=im_end_id,
        pad_token_id=pad_id,
        use_cache=True,
    )
    if sample:
        kw.update(
            temperature=float(settings.temperature),
            top_p=float(settings.top_p),
            top_k=settings.top_k if settings.top_k > 0 else 0,
        )
    return GenerationConfig(**kw)


@dataclass
class HFBackend:
    """Rollouts with ``model.generate`` (the learner's model: no weight sync needed)."""

    model: Any
    tokenizer: Any
    max_pixels: int = MAX_PIXELS
    name: str = "hf"
    image_processor: Any = None
    last_seeds: list[int] = field(default_factory=list)  # seeds of the last call (logs and tests)

    def __post_init__(self):
        self.im_end_id = self.tokenizer.convert_tokens_to_ids(IM_END)
        if self.image_processor is None:
            self.image_processor = load_image_processor(self.max_pixels)

    def _model(self):
        return getattr(self.model, "module", self.model)  # DDP / wrappers: generate on the inner model

    def generate(
        self, requests: Sequence[dict], settings: DecodeSettings, *, seed_base: int, request_offset: int = 0
    ) -> list[RolloutOutput]:
        import torch

        _check_seed_base(seed_base)
        model = self._model()
        limit = max_positions(model)
        encoded = []
        for i, req in enumerate(requests):  # encode and gate everything before generating anything
            name = f"rollout request {request_offset + i}"
            enc = encode_request(
                req, self.tokenizer, image_processor=self.image_processor, max_pixels=self.max_pixels, sample=name
            )
            length_gate(len(enc.prompt_ids), settings.max_tokens, limit, sample=name)
            encoded.append(enc)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.im_end_id
        gen_cfg = generation_config(settings, self.im_end_id, pad)
        device = next(model.parameters()).device
        dtype = next(model.parameters()).dtype
        fork_devices = [device.index or 0] if device.type == "cuda" else []
        was_training = model.training
        self.last_seeds = []
        out: list[RolloutOutput] = []
        model.eval()
        try:
            with torch.random.fork_rng(devices=fork_devices), torch.no_grad():
                for i, enc in enumerate(encoded):
                    seed = call_seed(seed_base, request_offset, i)
                    self.last_seeds.append(seed)
                    torch.manual_seed(seed)
                    out.append(self._generate_one(model, enc, gen_cfg, device, dtype))
        finally:
            model.train(was_training)
        return out

    def _generate_one(self, model, enc: PromptInputs, gen_cfg, device, dtype) -> RolloutOutput:
        import torch

        ids = torch.tensor([enc.prompt_ids], dtype=torch.long, device=device)
        kw = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        if enc.pixel_values is not None:
            kw["pixel_values"] = enc.pixel_values.to(device=device, dtype=dtype)
            kw["image_grid_thw"] = enc.image_grid_thw.to(device)
            # transformers 5.x Qwen3-VL wants the image-token mask whenever a grid is passed.
            kw["mm_token_type_ids"] = (ids == IMAGE_TOKEN_ID).to(torch.int32)
        seq = model.generate(**kw, generation_config=gen_cfg)
        gen = [int(t) for t in seq[0, ids.shape[1] :].tolist()]
        if self.im_end_id in gen:  # nothing after the stop token (batch padding never applies here)
            gen = gen[: gen.index(self.im_end_id) + 1]
        text_ids = gen[:-1] if gen and gen[-1] == self.im_end_id else gen
        text = self.tokenizer.decode(text_ids, **DECODE_KWARGS)
        result = RolloutOutput(
            prompt_token_ids=list(enc.prompt_ids),
            token_ids=gen,
            text=text,
            finish_reason="stop" if self.im_end_id in gen else "length",
        )
        return ensure_eos(result, self.im_end_id)

    def close(self) -> None:
        pass
