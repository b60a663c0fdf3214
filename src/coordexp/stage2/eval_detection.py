"""COCO bbox metrics of a Stage-2 rollout eval (``rollout_matching.eval_detection.enabled``).

Contract: each eval rollout becomes the row inference would write for it
(``coordexp.infer.artifact.build_row``: the generated ids decoded as ``coordexp.infer.runner.output_text``
does, parsed in salvage mode, bins -> pixels against the record's image size), and the rows go through
the detection evaluator (``coordexp.eval.evaluate_rows``, pycocotools; every prediction scores 1.0).
The result is the evaluator's top-level ``bbox_*`` keys under the eval prefix
(``eval_rollout/bbox_AP``, ``eval_rollout/bbox_AP50``, ...), so an in-training number and
``metrics.json`` of the same outputs agree exactly.
"""

from __future__ import annotations

from coordexp.errors import CoordExpError


class EvalDetectionError(CoordExpError, RuntimeError):
    """A rollout eval sample without the record the COCO rows are built from."""


def rollout_rows(tok, samples, outputs, field_order: str) -> list[dict]:
    """The inference artifact rows of ``samples``' rollouts (one per sample, in order)."""
    from coordexp.infer.artifact import build_row
    from coordexp.infer.runner import output_text

    rows = []
    for s, o in zip(samples, outputs, strict=True):
        if s.record is None:
            raise EvalDetectionError(
                f"{s.sample}: rollout_matching.eval_detection needs the sample's record "
                "(build eval samples with coordexp.stage2.trainer.prepare_samples)"
            )
        rows.append(build_row(s.record, output_text(tok, o), field_order=field_order, finish_reason=o.finish_reason))
    return rows


def coco_metrics(tok, samples, outputs, field_order: str, prefix: str) -> dict[str, float]:
    """``{prefix}/bbox_AP``, ``{prefix}/bbox_AP50``, ... of the rollouts (-1.0: undefined, as pycocotools)."""
    from coordexp.eval import evaluate_rows

    report, _ = evaluate_rows(rollout_rows(tok, samples, outputs, field_order))
    return {f"{prefix}/{k}": float(v) for k, v in sorted(report.items()) if k.startswith("bbox_")}
