"""Checks for capability `detection-evaluator`: pycocotools metrics, score ranking, F1-style matching,
per-class tables, the library entry point, the command line and the overlay pictures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from coordexp.eval import evaluate_artifact, evaluate_rows
from coordexp.infer.artifact import dumps, object_row
from coordexp.infer.scoring import SCORE_SOURCE
from specgen import check
from tests.helpers.detection_rows import SCENE, SCENE2, row

CAP = "detection-evaluator"
REPO = Path(__file__).resolve().parents[2]


def metrics(rows, **kw):
    return evaluate_rows(rows, **kw)[0]


# ---------------------------------------------------------------- COCO Metrics From pycocotools


@check(CAP, "COCO Metrics From pycocotools", "Ground truth read back as predictions scores 1.0")
def check_gt_as_predictions_scores_one():
    m = metrics([row(0, SCENE, SCENE), row(1, SCENE2, SCENE2, w=640, h=480)])
    for k in ("bbox_AP", "bbox_AP50", "bbox_AP75", "bbox_AR10", "bbox_AR100"):  # AR1: one detection per image
        assert m[k] == pytest.approx(1.0), k
    for k in ("APs", "APm", "APl"):
        assert m[f"bbox_{k}"] in (pytest.approx(1.0), -1.0), k  # -1: no GT of that size
    assert m["f1ish@0.50_precision_full_micro"] == 1.0 and m["f1ish@0.50_recall_full_micro"] == 1.0
    assert m["counters"]["images"] == 2 and m["counters"]["gt_objects"] == 5


@check(CAP, "COCO Metrics From pycocotools", "A box shifted by one bin loses only the strict thresholds")
def check_one_bin_shift():
    gt = [("cat", [100, 100, 110, 110])]
    m = metrics([row(0, gt, [("cat", [101, 100, 111, 110])])])
    assert m["bbox_AP50"] == pytest.approx(1.0) and m["bbox_AP75"] == pytest.approx(1.0)
    assert m["bbox_AP"] == pytest.approx(0.7)  # IoU 90/110 = 0.818 passes 0.50..0.80: 7 of 10
    assert metrics([row(0, gt, gt)])["bbox_AP"] == pytest.approx(1.0)


@check(CAP, "COCO Metrics From pycocotools", "Swapped x and y lose the match")
def check_swapped_xy():
    gt = [("dog", [100, 400, 300, 450])]
    good = metrics([row(0, gt, gt)])
    bad = metrics([row(0, gt, [("dog", [400, 100, 450, 300])])])
    assert good["bbox_AP50"] == pytest.approx(1.0)
    assert bad["bbox_AP50"] == pytest.approx(0.0)
    assert bad["f1ish@0.50_recall_loc_micro"] == 0.0 and bad["f1ish@0.50_fn_loc"] == 1.0


@check(CAP, "COCO Metrics From pycocotools", "A desc mismatch is a miss for COCO and a semantic error for F1")
def check_desc_mismatch():
    good = metrics([row(0, SCENE, SCENE)])
    wrong = [("dog", SCENE[0][1])] + SCENE[1:]
    bad = metrics([row(0, SCENE, wrong)])
    assert bad["bbox_AP"] < good["bbox_AP"]
    assert bad["f1ish@0.50_tp_loc"] == good["f1ish@0.50_tp_loc"] == 3.0
    assert bad["f1ish@0.50_tp_full"] == good["f1ish@0.50_tp_full"] - 1
    assert bad["f1ish@0.50_fp_full"] == good["f1ish@0.50_fp_full"] + 1
    assert bad["f1ish@0.50_fn_full"] == good["f1ish@0.50_fn_full"] + 1


# ---------------------------------------------------------------- Scores Rank The Predictions

SCORED_GT = [("cat", [100, 100, 300, 300]), ("cat", [600, 600, 800, 800]), ("dog", [100, 600, 300, 900])]
# (pred, score): two true positives, a false positive tied in score with the second one, a dog TP
SCORED = [
    (("cat", [100, 100, 300, 300]), 0.9),
    (("cat", [610, 600, 800, 810]), 0.6),
    (("cat", [350, 350, 450, 450]), 0.6),
    (("dog", [100, 600, 300, 880]), 0.7),
]


def _scored_row(index, preds):
    return row(index, SCORED_GT, [p for p, _ in preds], scores=[s for _, s in preds])


@check(CAP, "Scores Rank The Predictions", "Permuting the predictions changes no metric")
def check_permutation_invariant():
    import itertools

    def report(order):
        preds = [SCORED[i] for i in order]
        rows = [_scored_row(0, preds), _scored_row(1, preds[::-1])]
        m = metrics(rows)
        m["eval"].pop("coco_summary")  # the same numbers as the keys, formatted
        return json.dumps(m, sort_keys=True)

    first = report(range(len(SCORED)))
    for order in itertools.permutations(range(len(SCORED))):
        assert report(order) == first, order
    m = json.loads(first)
    assert 0 < m["bbox_AP50"] < 1  # the false positive is ranked among the true positives


@check(CAP, "Scores Rank The Predictions", "A wrong box costs less at a low score than at a high one")
def check_low_score_costs_less():
    gt = [("cat", [100, 100, 300, 300]), ("cat", [600, 600, 800, 800])]
    tps = [("cat", [100, 100, 300, 300]), ("cat", [600, 600, 800, 800])]
    wrong = ("cat", [350, 350, 450, 450])
    low = metrics([row(0, gt, [wrong, *tps], scores=[0.1, 0.8, 0.7])])
    high = metrics([row(0, gt, [*tps, wrong], scores=[0.8, 0.7, 0.95])])
    assert low["bbox_AP"] == pytest.approx(1.0)  # ranked last: precision 1.0 at every recall
    assert high["bbox_AP"] < low["bbox_AP"] and high["bbox_AP50"] < low["bbox_AP50"]
    assert high["bbox_AR100"] == low["bbox_AR100"]
    for k in ("tp", "fp", "fn"):
        assert high[f"f1ish@0.50_{k}_full"] == low[f"f1ish@0.50_{k}_full"]


@check(CAP, "Scores Rank The Predictions", "The score sources are recorded")
def check_score_sources(tmp_path):
    scored = _scored_row(0, SCORED)
    unscored = row(1, SCENE, SCENE)
    p = tmp_path / "a.jsonl"
    p.write_text(dumps(scored) + "\n" + dumps(unscored) + "\n")
    written = json.loads(
        (lambda: (evaluate_artifact(p, tmp_path / "ev"), (tmp_path / "ev/metrics.json").read_text())[1])()
    )
    assert written["eval"]["score_sources"] == {SCORE_SOURCE: len(SCORED), "none": len(SCENE)}
    assert written["counters"]["pred_unscored"] == len(SCENE)
    assert "score" in written["eval"]["score_rule"] and "1.0" in written["eval"]["score_rule"]


# ---------------------------------------------------------------- F1-Style Matching


@check(CAP, "F1-Style Matching", "Greedy matching takes the highest IoU first")
def check_greedy_highest_iou_first():
    from coordexp.eval.matching import bbox_iou, match_image

    gt = [object_row("cat", "bbox_2d", [100, 100, 200, 200], 1000, 1000)]
    weak = object_row("cat", "bbox_2d", [100, 100, 200, 260], 1000, 1000)  # IoU 100/160
    strong = object_row("cat", "bbox_2d", [100, 100, 200, 210], 1000, 1000)
    assert bbox_iou(weak["bbox"], gt[0]["bbox"]) == pytest.approx(0.625)
    assert bbox_iou(strong["bbox"], gt[0]["bbox"]) == pytest.approx(100 / 110)
    m = match_image([weak, strong], gt, 0.5)
    assert [(p, g) for p, g, _i, _ok in m.matches] == [(1, 0)]
    assert m.unmatched_pred == [0]


@check(CAP, "F1-Style Matching", "Empty images follow the reference's conventions")
def check_empty_image_conventions():
    m = metrics([row(0, [], []), row(1, [("cat", [1, 1, 50, 50])], [])])
    assert m["f1ish@0.50_precision_loc_macro"] == pytest.approx(1.0)
    assert m["f1ish@0.50_recall_loc_macro"] == pytest.approx(0.5)
    assert m["f1ish@0.50_precision_loc_micro"] == 1.0 and m["f1ish@0.50_recall_loc_micro"] == 0.0
    assert m["counters"]["empty_pred"] == 2


@check(CAP, "F1-Style Matching", "Out-of-scope predictions are ignored and counted")
def check_pred_scope():
    r = row(0, [("cat", [100, 100, 300, 300])], [("cat", [100, 100, 300, 300]), ("zebra", [500, 500, 600, 600])])
    ann = metrics([r])
    assert ann["f1ish@0.50_fp_loc"] == 0.0 and ann["f1ish@0.50_pred_ignored"] == 1.0
    assert ann["counters"]["coco_pred_unknown_desc"] == 1
    every = metrics([r], pred_scope="all")
    assert every["f1ish@0.50_fp_loc"] == 1.0 and every["f1ish@0.50_pred_ignored"] == 0.0


# ---------------------------------------------------------------- Per-Class Tables And Counters


@check(CAP, "Per-Class Tables And Counters", "Per-class counts add up")
def check_per_class_counts():
    pred = [SCENE[0], SCENE[1], ("dog", [900, 900, 990, 990])]  # the small cat missed, one FP dog
    m = metrics([row(0, SCENE, pred)])
    pc = m["per_class"]
    assert set(pc) == {"cat", "dog"}
    for name, c in pc.items():
        assert c.get("tp", 0) + c.get("fn", 0) == c["gt"], name
        assert "AP" in c and "AP50" in c
    assert pc["cat"]["gt"] == 2 and pc["cat"]["fn"] == 1 and pc["dog"]["fp"] == 1
    for k in ("tp", "fp", "fn"):
        assert sum(c.get(k, 0) for c in pc.values()) == m[f"f1ish@0.50_{k}_full"]


@check(CAP, "Per-Class Tables And Counters", "Same artifact, same bytes")
def check_same_bytes(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text(dumps(row(0, SCENE, SCENE[:2])) + "\n" + dumps(row(1, SCENE2, SCENE2[::-1])) + "\n")
    evaluate_artifact(p, tmp_path / "one")
    evaluate_artifact(p, tmp_path / "two")
    assert (tmp_path / "one/metrics.json").read_bytes() == (tmp_path / "two/metrics.json").read_bytes()
    assert (tmp_path / "one/matches.jsonl").read_bytes() == (tmp_path / "two/matches.jsonl").read_bytes()


# ---------------------------------------------------------------- Library Entry Point


@check(CAP, "Library Entry Point", "Rows built in memory evaluate like the written artifact")
def check_library_entry_point(tmp_path):
    from coordexp.format.data import DetObject, Record
    from coordexp.infer.artifact import build_row
    from tests.helpers.detection_rows import render_gt

    objs = tuple(DetObject(d, "bbox_2d", tuple(b)) for d, b in SCENE)
    rec = Record(images=("/x/a.png",), objects=objs, width=640, height=480, line=1, base_idx=0, source="v.jsonl")
    text = render_gt(rec, "desc_first").replace('"cat"', '"dog"', 1)
    rows = [build_row(rec, text, field_order="desc_first")]
    in_memory, _ = evaluate_rows(rows)
    p = tmp_path / "gt_vs_pred.jsonl"
    p.write_text("".join(dumps(r) + "\n" for r in rows))
    on_disk = evaluate_artifact(p, tmp_path / "ev")
    on_disk.pop("artifact")
    assert json.dumps(in_memory, sort_keys=True) == json.dumps(on_disk, sort_keys=True)
    assert in_memory["bbox_AP"] < 1.0  # the desc swap is seen


# ---------------------------------------------------------------- Evaluation Command Line


@check(CAP, "Evaluation Command Line", "A torn artifact is refused with its line")
def check_cli_torn_artifact(tmp_path):
    p = tmp_path / "gt_vs_pred.jsonl"
    full = dumps(row(0, SCENE, SCENE))
    p.write_text(full + "\n" + full[: len(full) // 2])
    r = subprocess.run(
        [sys.executable, "-m", "coordexp.eval", "--artifact", str(p), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert f"{p}:2:" in lines[0]
    ok = tmp_path / "ok.jsonl"
    ok.write_text(full + "\n")
    r = subprocess.run(
        [sys.executable, "-m", "coordexp.eval", "--artifact", str(ok), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "o/metrics.json").read_text())["bbox_AP"] == pytest.approx(1.0)
    assert (tmp_path / "o/matches.jsonl").is_file()


# ---------------------------------------------------------------- Overlay Pictures


@check(CAP, "Overlay Pictures", "Each kind is drawn in its style")
@pytest.mark.reach_exception(
    "the e2e smoke's memorised model makes no false positive, so its overlays draw no dashed FP box"
)
def check_overlay_styles(tmp_path):
    from PIL import Image

    from coordexp.eval import vis

    img = tmp_path / "a.png"
    Image.new("RGB", (640, 480), (255, 255, 255)).save(img)
    gt = [("cat", [100, 100, 300, 300]), ("dog", [600, 600, 900, 900])]
    pred = [("cat", [100, 100, 300, 300]), ("bird", [500, 100, 900, 300])]
    r = row(0, gt, pred, w=640, h=480, image=str(img))
    summary = vis.write_run([r], tmp_path / "vis")
    assert summary["overlays"] == 1
    pic = Image.open(tmp_path / "vis/overlay_00000.png").convert("RGB")
    scale = max(1.0, vis.MIN_SIDE / 480)

    def edge(obj, side="left"):
        x1, y1, x2, y2 = obj["bbox"]
        xs = x1 * scale if side == "left" else (x2 + 1) * scale - 1
        return [
            pic.getpixel((round(xs), round(y)))
            for y in [y1 * scale + (y2 - y1) * scale * t / 40 for t in range(12, 30)]
        ]

    def near(px, color, tol=40):
        return all(abs(a - b) <= tol for a, b in zip(px, color, strict=False))

    matched, fp, fn = r["pred"][0], r["pred"][1], r["gt"][1]
    assert all(near(p, vis.GREEN) for p in edge(matched))
    red = [near(p, vis.RED) for p in edge(fp, "right")]
    assert any(red) and not all(red)  # dashed: red with gaps
    assert all(near(p, vis.ORANGE) for p in edge(fn))
    page = (tmp_path / "vis/index.html").read_text()
    assert 'src="overlay_00000.png"' in page and "TP 1 / FP 1 / FN 1" in page
    assert (tmp_path / "vis/contact_sheet.png").is_file()
