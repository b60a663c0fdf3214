"""coordexp.infer: a checkpoint over a JSONL -> the ``gt_vs_pred.jsonl`` artifact.

See docs/inference-and-evaluation.md.

    python -m coordexp.infer <config.yaml>        # scripts/infer.sh <config.yaml>
"""
