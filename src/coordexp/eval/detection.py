"""Detection evaluation of inference rows: COCO bbox AP/AR, F1-style matched P/R, per-class tables.

``evaluate_rows(rows)`` is the library entry point (in-training evaluation calls it with rows
built by ``coordexp.infer.artifact.build_row``); ``evaluate_artifact(path, out_dir)`` reads
``gt_vs_pred.jsonl`` and writes ``metrics.json`` and ``matches.jsonl``.

``metrics.json`` (keys sorted, same input -> same bytes):

    bbox_AP, bbox_AP50, bbox_AP75, bbox_APs, bbox_APm, bbox_APl,
    bbox_AR1, bbox_AR10, bbox_AR100, bbox_ARs, bbox_ARm, bbox_ARl     pycocotools (coordexp.eval.coco)
    f1ish@<thr>_*                                                      per IoU threshold (coordexp.eval.matching)
    per_class: {desc: {AP, AP50, gt, pred, tp@<thr>, fp@<thr>, fn@<thr>}}   at the primary threshold
    counters: images, gt_objects, pred_objects, parse drops by reason, degenerate boxes,
              COCO-unscorable preds (desc not a GT class), empty predictions, truncated outputs
    eval: the settings (thresholds, scope), the score rule and ``score_sources``: how many
          predictions were scored by each source (``coordexp.infer.scoring.SCORE_SOURCE``)

Scores: COCO ranks each prediction by its ``score`` (the model's confidence, written by
inference). A prediction without one (rows built without token log-probabilities, e.g. an
artifact of schema 1) scores ``UNSCORED`` = 1.0 and is counted (``counters.pred_unscored``,
``score_sources["none"]``); ties are ranked by box, never by written order.

The primary F1 threshold is 0.50 when listed, else the largest one (the reference's rule).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from coordexp.eval.coco import coco_bbox_metrics
from coordexp.eval.matching import F1Accumulator, match_image, normalize_desc, pred_score

METRICS_FILE = "metrics.json"
MATCHES_FILE = "matches.jsonl"
UNSCORED = 1.0
SCORE_RULE = (
    "COCO ranks predictions by pred[*].score, the model's confidence written by inference (its source per row: "
    "score_source); a prediction without a score counts as 1.0 (pred_unscored); equal scores are ranked by box, "
    "never by the order the model wrote the objects"
)


def primary_threshold(thresholds) -> float:
    thr = sorted({float(t) for t in thresholds})
    return 0.5 if any(abs(t - 0.5) < 1e-9 for t in thr) else max(thr)


def _categories(rows) -> dict[str, int]:
    cats: dict[str, int] = {}
    for row in rows:
        for g in row["gt"]:
            cats.setdefault(normalize_desc(g["desc"]), len(cats) + 1)
    return cats


def _counters(rows) -> dict:
    c: Counter = Counter()
    for row in rows:
        c["images"] += 1
        c["gt_objects"] += len(row["gt"])
        c["pred_objects"] += len(row["pred"])
        c["empty_pred"] += not row["pred"]
        p = row.get("parse") or {}
        c["pred_dropped_by_parser"] += int(p.get("n_dropped", 0))
        for reason, n in (p.get("drops") or {}).items():
            c[f"parse_drop_{reason}"] += int(n)
        c["truncated_outputs"] += bool(p.get("truncated"))
        c["parse_failed_outputs"] += bool(p.get("parse_failed"))
    return dict(c)


def evaluate_rows(rows: list[dict], *, iou_thresholds=(0.3, 0.5), pred_scope: str = "annotated"):
    """(report dict as written to metrics.json, per-image match rows at the primary threshold)."""
    thresholds = sorted({float(t) for t in iou_thresholds})
    primary = primary_threshold(thresholds)
    cats = _categories(rows)
    images, unknown = [], 0
    sources: Counter = Counter()
    accs = {t: F1Accumulator(t) for t in thresholds}
    per_class = {name: Counter() for name in cats}
    match_rows = []
    for img_id, row in enumerate(rows):
        gt = [(cats[normalize_desc(g["desc"])], g["bbox"]) for g in row["gt"]]
        pred = []
        for p in row["pred"]:
            src = row.get("score_source") if p.get("score") is not None else "none"
            sources[src or "none"] += 1
            cat = cats.get(normalize_desc(p["desc"]))
            if cat is None:
                unknown += 1
                continue
            pred.append((cat, p["bbox"], pred_score(p, UNSCORED)))
        images.append({"id": img_id, "width": row["width"], "height": row["height"], "gt": gt, "pred": pred})
        for t in thresholds:
            m = match_image(row["pred"], row["gt"], t, pred_scope)
            accs[t].add(m, len(row["pred"]))
            if t == primary:
                _class_counts(per_class, row, m)
                match_rows.append(_match_row(row, m, t))
    metrics, coco_pc, coco_counters, summary = coco_bbox_metrics(images, cats)
    report = dict(metrics)
    for acc in accs.values():
        report.update(acc.metrics())
    counters = _counters(rows)
    counters.update(coco_counters)
    counters["coco_pred_unknown_desc"] = unknown
    counters["pred_unscored"] = sources.get("none", 0)
    report["counters"] = dict(sorted(counters.items()))
    report["per_class"] = {name: {**coco_pc.get(name, {}), **dict(per_class[name])} for name in sorted(cats)}
    # pycocotools' stat lines only: its progress lines carry timings, which would break same-input-same-bytes
    stats = [ln for ln in summary.split("\n") if ln.lstrip().startswith("Average")]
    report["eval"] = {
        "iou_thresholds": thresholds,
        "primary_iou_threshold": primary,
        "pred_scope": pred_scope,
        "score_rule": SCORE_RULE,
        "score_sources": dict(sorted(sources.items())),
        "coco_summary": stats,
    }
    return report, match_rows


def _class_counts(per_class, row, m) -> None:
    for g in row["gt"]:
        per_class[normalize_desc(g["desc"])]["gt"] += 1
    gt_descs = set(per_class)
    for p in row["pred"]:
        d = normalize_desc(p["desc"])
        if d in gt_descs:
            per_class[d]["pred"] += 1
    for pi, gi, _iou, ok in m.matches:
        d = normalize_desc(row["gt"][gi]["desc"])
        if ok:
            per_class[d]["tp"] += 1
        else:
            per_class[d]["fn"] += 1
            pd = normalize_desc(row["pred"][pi]["desc"])
            if pd in gt_descs:
                per_class[pd]["fp"] += 1
    for pi in m.unmatched_pred:
        d = normalize_desc(row["pred"][pi]["desc"])
        if d in gt_descs:
            per_class[d]["fp"] += 1
    for gi in m.unmatched_gt:
        per_class[normalize_desc(row["gt"][gi]["desc"])]["fn"] += 1


def _match_row(row, m, thr) -> dict:
    return {
        "index": row["index"],
        "image": row.get("image"),
        "iou_thr": thr,
        "matches": [{"pred": pi, "gt": gi, "iou": round(iou, 6), "desc_ok": ok} for pi, gi, iou, ok in m.matches],
        "unmatched_pred": m.unmatched_pred,
        "unmatched_gt": m.unmatched_gt,
        "ignored_pred": m.ignored_pred,
    }


def evaluate_artifact(
    artifact: str | Path, out_dir: str | Path, *, iou_thresholds=(0.3, 0.5), pred_scope: str = "annotated"
) -> dict:
    from coordexp.infer.artifact import load_artifact

    rows = load_artifact(artifact)
    report, matches = evaluate_rows(rows, iou_thresholds=iou_thresholds, pred_scope=pred_scope)
    report["artifact"] = str(artifact)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / METRICS_FILE).write_text(
        json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    with (out / MATCHES_FILE).open("w", encoding="utf-8") as f:
        for m in matches:
            f.write(json.dumps(m, sort_keys=True, ensure_ascii=False) + "\n")
    return report
