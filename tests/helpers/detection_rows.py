"""Detection artifact rows built from (desc, bins) pairs: the scenes the evaluator's checks and unit tests score."""

from __future__ import annotations

from coordexp.format.coord import coord_token
from coordexp.format.coordjson import render
from coordexp.infer.artifact import object_row
from coordexp.infer.scoring import SCORE_SOURCE


def row(index, gt, pred, w=1000, h=1000, image=None, scores=None):
    """An artifact row from (desc, bins) pairs (bbox_2d); ``scores`` gives each prediction its score."""
    preds = [object_row(d, "bbox_2d", b, w, h) for d, b in pred]
    for p, s in zip(preds, scores or [], strict=False):
        p["score"] = s
    return {
        "index": index,
        "line": index + 1,
        "image": image,
        "width": w,
        "height": h,
        "coord_mode": "pixel",
        "gt": [object_row(d, "bbox_2d", b, w, h) for d, b in gt],
        "pred": preds,
        "raw_output": "",
        "finish_reason": "stop",
        "score_source": SCORE_SOURCE if scores else None,
        "parse": {
            "n_valid": len(pred),
            "n_dropped": 0,
            "drops": {},
            "truncated": False,
            "parse_failed": False,
            "error": None,
        },
    }


SCENE = [("cat", [100, 100, 300, 260]), ("dog", [500, 400, 700, 450]), ("cat", [600, 50, 640, 90])]
SCENE2 = [("dog", [10, 10, 400, 400]), ("bird", [420, 600, 560, 900])]


def render_gt(record, field_order: str) -> str:
    """The record's GT as the CoordJSON a perfect model would write: the output the inference checks feed in."""
    objects = [{"desc": o.desc, o.geometry: [coord_token(v) for v in o.values]} for o in record.objects]
    return render(objects, field_order)
