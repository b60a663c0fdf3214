"""``python -m coordexp.eval <config.yaml>`` (its `eval:` section) or ``--artifact PATH --out DIR``.

Writes ``metrics.json`` and ``matches.jsonl``; prints the headline numbers. Errors are one line
each (``file:line: error: ...``) with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from coordexp.config.issues import ConfigError
    from coordexp.eval.coco import CocoUnavailable
    from coordexp.eval.detection import METRICS_FILE, evaluate_artifact
    from coordexp.infer.artifact import ArtifactError
    from coordexp.infer.config import load_pipeline_config

    ap = argparse.ArgumentParser(
        prog="python -m coordexp.eval", description="COCO + F1-style detection metrics of a gt_vs_pred.jsonl artifact"
    )
    ap.add_argument("config", nargs="?", help="a pipeline config with an `eval:` (or `infer:`) section")
    ap.add_argument("--artifact", help="the artifact to read (instead of a config)")
    ap.add_argument("--out", help="output directory (with --artifact; default: <artifact dir>/eval)")
    ns = ap.parse_args(argv)
    if bool(ns.config) == bool(ns.artifact):
        ap.error("give either a config or --artifact")
    try:
        if ns.config:
            cfg = load_pipeline_config(ns.config)
            ev = cfg.eval
            if ev is None:
                from coordexp.infer.config import EvalConfig

                if cfg.infer is None:
                    print(
                        f"{ns.config}:1: error: neither `eval:` nor `infer:` section: nothing to evaluate",
                        file=sys.stderr,
                    )
                    return 2
                ev = EvalConfig(artifact=str(cfg.infer.artifact), output_dir=str(cfg.infer.artifact.parent / "eval"))
            artifact, out, thr, scope = ev.artifact, ev.output_dir, ev.iou_thresholds, ev.pred_scope
        else:
            from pathlib import Path

            artifact = ns.artifact
            out = ns.out or str(Path(artifact).parent / "eval")
            thr, scope = (0.3, 0.5), "annotated"
        report = evaluate_artifact(artifact, out, iou_thresholds=thr, pred_scope=scope)
    except ConfigError as exc:
        for issue in exc.errors:
            print(issue.format(), file=sys.stderr)
        return 2
    except (ArtifactError, CocoUnavailable, OSError) as exc:
        print(f"coordexp.eval: error: {exc}", file=sys.stderr)
        return 2
    p = report["eval"]["primary_iou_threshold"]
    print(
        f"coordexp.eval: {out}/{METRICS_FILE}: bbox_AP {report['bbox_AP']:.4f}  AP50 {report['bbox_AP50']:.4f}  "
        f"AR100 {report['bbox_AR100']:.4f}  F1@{p:.2f} {report[f'f1ish@{p:.2f}_f1_full_micro']:.4f} "
        f"({report['counters']['images']} images)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
