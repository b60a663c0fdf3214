"""Unit tests of coordexp.infer: the profile loader, batching, resume bookkeeping, artifact reading."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from coordexp.config.issues import ConfigError
from coordexp.format.data import DetObject, Record
from coordexp.infer.artifact import (
    ArtifactError, ArtifactWriter, build_row, dumps, load_artifact, read_done,
)
from coordexp.infer.config import load_pipeline_config
from coordexp.infer.runner import contiguous_batches
from tests.helpers.detection_rows import render_gt

REPO = Path(__file__).resolve().parents[2]


def _rec(i, w=640, h=480):
    objs = (DetObject("cat", "bbox_2d", (10, 20, 300, 400)), DetObject("dog", "poly", (500, 100, 900, 300, 600, 700)))
    return Record(images=(f"/d/img{i}.png",), objects=objs, width=w, height=h, line=i + 1, base_idx=i,
                  source="/d/v.jsonl")


def _write(tmp_path, text, name="p.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_missing_required_section_is_named(tmp_path):
    p = _write(tmp_path, "eval:\n  artifact: a.jsonl\n")
    with pytest.raises(ConfigError) as e:
        load_pipeline_config(p, require=("infer",))
    assert [i.key for i in e.value.errors] == ["infer"]


def test_vllm_needs_a_server_url(tmp_path):
    p = _write(tmp_path, "infer:\n  model: m\n  jsonl: j\n  output_dir: o\n  backend: vllm\n")
    with pytest.raises(ConfigError) as e:
        load_pipeline_config(p)
    assert [(i.key, i.loc.line) for i in e.value.errors] == [("infer.server_url", 1)]


def test_eval_without_infer_needs_an_artifact(tmp_path):
    with pytest.raises(ConfigError, match="eval.artifact: required"):
        load_pipeline_config(_write(tmp_path, "eval:\n  pred_scope: all\n"))
    with pytest.raises(ConfigError, match="iou_thresholds"):
        load_pipeline_config(_write(tmp_path, "eval:\n  artifact: a\n  iou_thresholds: [0.5, 1.5]\n"))


def test_extends_and_derived_defaults(tmp_path):
    cfg = load_pipeline_config(REPO / "configs/infer/smoke/e2e.yaml", require=("infer", "eval", "vis"))
    assert cfg.infer.output_dir == str(REPO / "build/e2e")
    assert cfg.eval.artifact == str(REPO / "build/e2e/gt_vs_pred.jsonl")
    assert cfg.eval.output_dir == str(REPO / "build/e2e")
    assert cfg.vis.output_dir == str(REPO / "build/e2e/vis")
    assert cfg.infer.prompts.field_order == "geometry_first"  # inherited from tiny_cpu.yaml


def test_contiguous_batches():
    assert contiguous_batches([0, 1, 2, 3, 4], 2) == [[0, 1], [2, 3], [4]]
    assert contiguous_batches([3, 4, 7, 8, 9], 4) == [[3, 4], [7, 8, 9]]
    assert contiguous_batches([], 3) == []


def test_poly_rows_use_their_extent_as_bbox():
    row = build_row(_rec(0), render_gt(_rec(0), "desc_first"), field_order="desc_first")
    poly = row["gt"][1]
    assert poly["geometry"] == "poly" and len(poly["points"]) == 6
    xs, ys = poly["points"][0::2], poly["points"][1::2]
    assert poly["bbox"] == [min(xs), min(ys), max(xs), max(ys)]
    assert row["pred"] == row["gt"]


def test_read_done_refuses_rows_of_another_input(tmp_path):
    p = tmp_path / "a.jsonl"
    row = build_row(_rec(0), "", field_order="desc_first")
    p.write_text(dumps(row) + "\n")
    assert set(read_done(p, [_rec(0), _rec(1)]).done) == {0}
    other = Record(images=("/elsewhere.png",), objects=(), width=64, height=64, line=1, base_idx=0, source="x")
    with pytest.raises(ArtifactError, match=r"a\.jsonl:1: error: row index 0 does not match"):
        read_done(p, [other])
    p.write_text(dumps(row) + "\n" + dumps(row) + "\n")
    with pytest.raises(ArtifactError, match="duplicate row"):
        read_done(p, [_rec(0)])


def test_read_done_counts_a_complete_json_without_newline_as_torn(tmp_path):
    p = tmp_path / "a.jsonl"
    rows = [dumps(build_row(_rec(i), "", field_order="desc_first")) for i in range(2)]
    p.write_text(rows[0] + "\n" + rows[1])
    st = read_done(p, [_rec(0), _rec(1)])
    assert set(st.done) == {0} and st.torn == 1 and st.valid_bytes == len(rows[0]) + 1
    with ArtifactWriter(p, st.valid_bytes) as w:
        w.write(json.loads(rows[1]))
    assert p.read_text() == rows[0] + "\n" + rows[1] + "\n"
    assert [r["index"] for r in load_artifact(p)] == [0, 1]


def test_load_artifact_errors(tmp_path):
    with pytest.raises(ArtifactError, match="artifact not found"):
        load_artifact(tmp_path / "none.jsonl")
    p = tmp_path / "a.jsonl"
    p.write_text('{"index": 0}\n')
    with pytest.raises(ArtifactError, match=r"a\.jsonl:1: error: row without `width`"):
        load_artifact(p)


def test_infer_cli_bad_jsonl_is_one_error_per_line(tmp_path):
    text = f"infer:\n  model: {tmp_path}\n  jsonl: {tmp_path}/missing.jsonl\n  output_dir: {tmp_path}/o\n"
    cfg = _write(tmp_path, text)
    r = subprocess.run([sys.executable, "-m", "coordexp.infer", str(cfg)], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"{tmp_path}/missing.jsonl:0: error: JSONL file not found" in r.stderr
