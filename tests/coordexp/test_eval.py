"""Unit tests of coordexp.eval and coordexp.eval.vis beyond the spec checks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from coordexp.eval.detection import evaluate_rows, primary_threshold
from coordexp.eval.matching import bbox_iou, normalize_desc, prf
from coordexp.infer.artifact import dumps
from tests.helpers.detection_rows import SCENE, row


def test_primary_threshold_rule():
    assert primary_threshold([0.3, 0.5]) == 0.5
    assert primary_threshold([0.3, 0.7]) == 0.7


def test_iou_and_prf_edges():
    assert bbox_iou([0, 0, 10, 10], [10, 0, 20, 10]) == 0.0  # touching boxes
    assert bbox_iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert prf(0, 0, 0) == (1.0, 1.0, 1.0)
    assert prf(0, 3, 0) == (0.0, 1.0, 0.0)
    assert normalize_desc("  Traffic   Light ") == "traffic light"


def test_no_prediction_at_all_scores_zero_not_an_error():
    m, matches = evaluate_rows([row(0, SCENE, [])])
    assert m["bbox_AP"] == 0.0 and m["bbox_AR100"] == 0.0
    assert matches[0]["unmatched_gt"] == [0, 1, 2]


def test_degenerate_prediction_is_counted():
    m, _ = evaluate_rows([row(0, SCENE, [("cat", [5, 5, 6, 6])])], iou_thresholds=[0.5])
    assert m["counters"]["pred_degenerate"] == 0  # 1 px wide on a 1000 px image is a box
    m, _ = evaluate_rows([row(0, SCENE, [("cat", [5, 5, 6, 6])], w=2, h=2)])
    assert m["counters"]["pred_degenerate"] == 1


def test_eval_cli_from_config(tmp_path):
    art = tmp_path / "gt_vs_pred.jsonl"
    art.write_text(dumps(row(0, SCENE, SCENE)) + "\n")
    cfg = tmp_path / "e.yaml"
    cfg.write_text(f"eval:\n  artifact: {art}\n  output_dir: {tmp_path}/ev\n  iou_thresholds: [0.5, 0.75]\n")
    r = subprocess.run([sys.executable, "-m", "coordexp.eval", str(cfg)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "ev/metrics.json").read_text())
    assert m["bbox_AP"] == pytest.approx(1.0) and "f1ish@0.75_f1_full_micro" in m
    assert m["eval"]["iou_thresholds"] == [0.5, 0.75]
    r = subprocess.run([sys.executable, "-m", "coordexp.eval", "--artifact", str(tmp_path / "nope.jsonl")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "artifact not found" in r.stderr
