"""COCO bbox AP/AR with pycocotools (the maintained reference implementation; never re-implemented here).

Input: per image, GT and prediction boxes in pixels ``[x1, y1, x2, y2]`` with descs. Categories
are the distinct normalized GT descs, numbered in order of first appearance. A prediction
whose desc is no GT category cannot be scored by COCO: it is dropped and counted
(``coco_pred_unknown_desc``). Boxes go to COCO as ``[x, y, w, h]`` with ``w = x2 - x1``;
a box with ``w <= 0`` or ``h <= 0`` is dropped and counted (``*_degenerate``).

Scores: each prediction carries its score (the model's confidence, ``coordexp.infer.scoring``),
and COCO ranks the detections by it. Detections are handed to pycocotools sorted by (image,
score descending, category, box), so equal scores are ranked by their boxes, never by the
order the model wrote them: permuting an image's predictions changes no metric.

Keys: ``bbox_AP`` (IoU .50:.95), ``bbox_AP50``, ``bbox_AP75``, ``bbox_APs/m/l`` (area < 32²,
32²..96², > 96² px²), ``bbox_AR1``, ``bbox_AR10``, ``bbox_AR100``, ``bbox_ARs/m/l``; a value of
-1.0 is pycocotools' "undefined" (no GT in that area range). Per class: AP and AP50.
"""

from __future__ import annotations

import contextlib
import io

from coordexp.errors import CoordExpError

STAT_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


class CocoUnavailable(CoordExpError, RuntimeError):
    pass


def _cocotools():
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise CocoUnavailable(
            "pycocotools is not installed: pip install 'pycocotools==2.0.11' (it is in the project's `pipeline` extra)"
        ) from None
    return COCO, COCOeval


def _coco(COCO, images, annotations, categories):
    c = COCO()
    c.dataset = {"images": images, "annotations": annotations, "categories": categories}
    with contextlib.redirect_stdout(io.StringIO()):
        c.createIndex()
    return c


def _xywh(b):
    return [b[0], b[1], b[2] - b[0], b[3] - b[1]]


def coco_bbox_metrics(images: list[dict], categories: dict[str, int]) -> tuple[dict, dict, dict, str]:
    """``images``: [{id, width, height, gt: [(cat, bbox)], pred: [(cat, bbox, score)]}] with known categories.

    Returns (metrics, per_class {name: {AP, AP50}}, counters, pycocotools' printed summary).
    """
    import numpy as np

    COCO, COCOeval = _cocotools()
    counters = {"gt_degenerate": 0, "pred_degenerate": 0}
    imgs, gts, dts = [], [], []
    for im in images:
        imgs.append({"id": im["id"], "width": im["width"], "height": im["height"]})
        preds = sorted(im["pred"], key=lambda p: (-p[2], p[0], list(p[1])))  # ties: by box, not written order
        for kind, sink, objs in (("gt", gts, [(c, b, None) for c, b in im["gt"]]), ("pred", dts, preds)):
            for cat, box, score in objs:
                x, y, w, h = _xywh(box)
                if w <= 0 or h <= 0:
                    counters[f"{kind}_degenerate"] += 1
                    continue
                ann = {
                    "id": len(sink) + 1,
                    "image_id": im["id"],
                    "category_id": cat,
                    "bbox": [x, y, w, h],
                    "area": float(w * h),
                    "iscrowd": 0,
                }
                if kind == "pred":
                    ann["score"] = float(score)
                sink.append(ann)
    cats = [{"id": i, "name": n} for n, i in sorted(categories.items(), key=lambda kv: kv[1])]
    gt = _coco(COCO, imgs, gts, cats)
    dt = _coco(COCO, imgs, dts, cats)
    ev = COCOeval(gt, dt, iouType="bbox")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    metrics = {f"bbox_{k}": float(v) for k, v in zip(STAT_KEYS, ev.stats, strict=True)}
    per_class = {}
    prec = ev.eval["precision"]  # [T, R, K, A, M]
    names = {c["id"]: c["name"] for c in cats}
    for k, cat_id in enumerate(ev.params.catIds):
        name = names[cat_id]
        allp = prec[:, :, k, 0, -1]
        p50 = prec[0, :, k, 0, -1]
        per_class[name] = {
            "AP": float(np.mean(allp[allp > -1])) if (allp > -1).any() else -1.0,
            "AP50": float(np.mean(p50[p50 > -1])) if (p50 > -1).any() else -1.0,
        }
    return metrics, per_class, counters, buf.getvalue()
