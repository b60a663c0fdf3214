"""``run_inference(cfg)``: a checkpoint over a JSONL -> ``gt_vs_pred.jsonl`` + a run manifest.

Flow: load and check the whole JSONL (``coordexp.format.data.load_records``: nothing runs on a bad
file) -> read back what an earlier run finished (``artifact.read_done``) -> load the model ->
generate the pending samples in batches of ``infer.batch_size`` -> parse each output in salvage
mode and append its row (flushed per row) -> write ``infer_summary.json``.

Seeds: sample i is generated under the rollout seed ``call_seed(norm_seed(infer.seed), i, 0)``
(each batch is one backend call with ``request_offset`` = its first index and consecutive
indices), so a sample's output does not depend on the batch size or on where a resumed run
starts. Greedy decoding (the default) does not use the seed at all.

Backends: ``hf`` runs ``model.generate`` in this process (``coordexp.generation.hf_backend``);
``vllm`` sends the same requests and decoding settings to a running ``swift rollout`` server
(``coordexp.generation.backend.ServerBackend``), which must serve the same weights.

Scores: every prediction is scored from the model's probabilities of the tokens it wrote
(``coordexp.infer.scoring``), by one teacher-forced forward per sample of a model in this
process: the HF backend's own model, or, with ``vllm``, ``infer.model`` (+ checkpoint) loaded
here on ``infer.device`` (the server's text gives no per-token probabilities).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from coordexp.infer.artifact import ArtifactWriter, build_row, read_done
from coordexp.infer.config import InferConfig
from coordexp.infer.scoring import SCORE_SOURCE

log = logging.getLogger(__name__)

SUMMARY = "infer_summary.json"


@dataclass
class InferResult:
    artifact: Path
    total: int
    skipped: int  # finished by an earlier run
    generated: int
    torn: int  # torn trailing rows that were cut and re-run
    seconds: float


def _requests(records, inf: InferConfig) -> list[dict]:
    from coordexp.format.template import build_messages
    from coordexp.generation.request import from_messages

    p = inf.prompts
    out = []
    for rec in records:
        msgs = build_messages(
            {"images": list(rec.images), "width": rec.width, "height": rec.height, "objects": []},
            field_order=p.field_order,
            prompt_variant=p.prompt_variant,
            object_ordering=p.object_ordering,
            with_assistant=False,
            source=f"{rec.source}:{rec.line}",
        )
        out.append(from_messages(msgs, sample=f"{rec.source}:{rec.line}"))
    return out


def contiguous_batches(indices: list[int], size: int) -> list[list[int]]:
    """Runs of consecutive indices, each at most ``size`` long (one backend call each)."""
    batches: list[list[int]] = []
    for i in indices:
        if batches and len(batches[-1]) < size and batches[-1][-1] == i - 1:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def output_text(tokenizer, out) -> str:
    """The generated text, decoded here from the generated ids (special tokens kept, ``<|im_end|>`` cut):
    a server's own text may have dropped the coord tokens (they are special tokens)."""
    from coordexp.format.template import DECODE_KWARGS
    from coordexp.generation.backend import IM_END_ID

    ids = list(out.token_ids)
    if IM_END_ID in ids:
        ids = ids[: ids.index(IM_END_ID)]
    return tokenizer.decode(ids, **DECODE_KWARGS)


def _local_hf(inf: InferConfig):
    from coordexp.generation.hf_backend import HFBackend
    from coordexp.infer.model import load_for_inference

    model, tok = load_for_inference(
        inf.model,
        inf.checkpoint,
        torch_dtype=inf.torch_dtype,
        device=inf.device,
        attn_impl=inf.attn_impl,
        tokenizer=inf.tokenizer,
    )
    return HFBackend(model=model, tokenizer=tok, max_pixels=inf.max_pixels), tok


def make_backend(inf: InferConfig):
    """(backend, tokenizer, scorer) for the configured backend."""
    from coordexp.infer.scoring import TokenScorer

    if inf.backend == "vllm":
        from coordexp.generation.backend import ServerBackend

        local, tok = _local_hf(inf)  # scores only: the server generates
        return ServerBackend(inf.server_url, chunk_size=inf.batch_size), tok, TokenScorer.from_backend(local)
    backend, tok = _local_hf(inf)
    return backend, tok, TokenScorer.from_backend(backend)


def _trace(scorer, tokenizer, request: dict, out, text: str):
    """The generated text tokens' offsets in ``text`` and their log-probabilities."""
    from coordexp.generation.backend import IM_END_ID
    from coordexp.infer.scoring import trace_from_ids

    ids = list(out.token_ids)
    if IM_END_ID in ids:
        ids = ids[: ids.index(IM_END_ID)]
    return trace_from_ids(tokenizer, ids, scorer.logprobs(request, out.prompt_token_ids, ids), text)


def run_inference(
    inf: InferConfig, *, config_path: str = "", backend=None, tokenizer=None, scorer=None, on_row=None
) -> InferResult:
    """Run (or resume) inference. ``backend`` (with ``tokenizer``) replaces the configured one; an HF backend
    scores with its own model, any other needs ``scorer`` (``scoring.TokenScorer``); ``on_row`` sees each row
    after it is written."""
    from coordexp.format.data import load_records
    from coordexp.generation.request import DecodeSettings, norm_seed

    t0 = time.monotonic()
    records = load_records(
        inf.jsonl, stage="stage1", max_pixels=inf.max_pixels, object_ordering=inf.prompts.object_ordering
    )
    if inf.limit is not None:
        records = records[: inf.limit]
    state = read_done(inf.artifact, records)
    pending = [r.base_idx for r in records if r.base_idx not in state.done]
    if state.torn:
        log.warning("%s: %d torn trailing row cut off; its sample runs again", inf.artifact, state.torn)
    _write_manifest(inf, config_path)
    by_index = {r.base_idx: r for r in records}
    d = inf.decoding
    settings = DecodeSettings.from_decoding(d, max_tokens=inf.max_new_tokens, repetition_penalty=d.repetition_penalty)
    generated = 0
    if pending:
        owned = backend is None
        if owned:
            backend, tokenizer, scorer = make_backend(inf)
        elif tokenizer is None:
            raise ValueError("run_inference: a backend passed in needs its tokenizer")
        elif scorer is None:
            if getattr(backend, "name", None) != "hf":
                raise ValueError("run_inference: a non-HF backend passed in needs a scorer (scoring.TokenScorer)")
            from coordexp.infer.scoring import TokenScorer

            scorer = TokenScorer.from_backend(backend)
        requests = _requests([by_index[i] for i in pending], inf)
        req_of = dict(zip(pending, requests, strict=True))
        bar = _progress(inf, total=len(records), initial=len(records) - len(pending))
        try:
            with ArtifactWriter(inf.artifact, state.valid_bytes) as writer:
                for batch in contiguous_batches(pending, inf.batch_size):
                    outs = backend.generate(
                        [req_of[i] for i in batch], settings, seed_base=norm_seed(inf.seed), request_offset=batch[0]
                    )
                    for i, out in zip(batch, outs, strict=True):
                        text = output_text(tokenizer, out)
                        row = build_row(
                            by_index[i],
                            text,
                            field_order=inf.prompts.field_order,
                            finish_reason=out.finish_reason,
                            trace=_trace(scorer, tokenizer, req_of[i], out, text),
                        )
                        writer.write(row)
                        generated += 1
                        if on_row is not None:
                            on_row(row)
                    if bar is not None:
                        bar.update(len(batch))
        finally:
            if bar is not None:
                bar.close()
            if owned:
                backend.close()
    result = InferResult(
        inf.artifact, len(records), len(records) - len(pending), generated, state.torn, round(time.monotonic() - t0, 3)
    )
    _write_summary(inf, result)
    return result


def _progress(inf: InferConfig, *, total: int, initial: int):
    if not inf.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc="infer", unit="sample", dynamic_ncols=True)


def _write_manifest(inf: InferConfig, config_path: str) -> None:
    """The training run manifest's files (resolved config, runtime env, run metadata) for this run."""
    from dataclasses import asdict

    from coordexp.config.paths import repo_root_for
    from coordexp.training.artifacts import write_run_manifest

    root = repo_root_for(Path(config_path)) if config_path else Path.cwd()
    write_run_manifest(
        inf.output_dir,
        config_path=config_path or "<in-process>",
        resolved={"infer": asdict(inf)},
        dataset_seed=inf.seed,
        repo_root=root,
        run_name=Path(inf.output_dir).name,
    )


def _write_summary(inf: InferConfig, r: InferResult) -> None:
    doc = {
        "artifact": str(r.artifact),
        "total": r.total,
        "skipped_finished": r.skipped,
        "generated": r.generated,
        "torn_rows_rerun": r.torn,
        "backend": inf.backend,
        "score_source": SCORE_SOURCE,
        "model": inf.model,
        "checkpoint": inf.checkpoint,
    }
    (Path(inf.output_dir) / SUMMARY).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
