"""Overlays of an inference artifact: one PNG per sample, a contact sheet and an HTML index.

Per sample, GT and predictions are matched as the evaluator matches them
(``coordexp.eval.matching.match_image``, every prediction in scope, at ``vis.iou_threshold``)
and drawn on the image, scaled up so the shortest side is at least 384 px:

    matched      green, solid: the prediction's box, labelled with its desc (and its score,
                 when the artifact has one)
                 (the GT box it matched is a thin green outline underneath)
    FP           red, dashed: an unmatched prediction, or one matched at the right place with
                 the wrong desc (label "pred desc != gt desc")
    FN           orange, solid and thick: a GT object no prediction found (label "desc (missed)")

A legend strip under the image gives the sample index and the TP / FP / FN counts. The HTML
page (``index.html``) lists every overlay with its counts, parse status and the raw output;
``contact_sheet.png`` tiles the overlays for a quick look.

    python -m coordexp.eval.vis <config.yaml>              # its `vis:` section
    python -m coordexp.eval.vis --artifact A --out DIR
"""

from __future__ import annotations

import html
import json
import sys
from pathlib import Path

from coordexp.eval.matching import match_image

GREEN = (30, 170, 60)
RED = (220, 30, 30)
ORANGE = (255, 140, 0)
MIN_SIDE = 384


def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _dashed_rect(draw, box, color, width: int, dash: int = 8) -> None:
    x1, y1, x2, y2 = box
    for ax, ay, bx, by in ((x1, y1, x2, y1), (x2, y1, x2, y2), (x2, y2, x1, y2), (x1, y2, x1, y1)):
        length = max(abs(bx - ax), abs(by - ay))
        steps = max(1, int(length // dash))
        for s in range(0, steps, 2):
            t0, t1 = s / steps, min(1.0, (s + 1) / steps)
            draw.line(
                [(ax + (bx - ax) * t0, ay + (by - ay) * t0), (ax + (bx - ax) * t1, ay + (by - ay) * t1)],
                fill=color,
                width=width,
            )


def _pred_label(pred: dict) -> str:
    score = pred.get("score")
    return pred["desc"] if score is None else f"{pred['desc']} {score:.2f}"


def _label(draw, xy, text: str, color, font) -> None:
    """Text on a white patch, shifted left/down as needed so it stays inside the picture."""
    x, y = xy
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    width, height = draw.im.size
    x = max(2, min(x, width - (x1 - x0) - 4))
    y = max(1, min(y, height - (y1 - y0) - 3))
    x0, y0, x1, y1 = draw.textbbox((x, y), text, font=font)
    draw.rectangle([x0 - 2, y0 - 1, x1 + 2, y1 + 1], fill=(255, 255, 255))
    draw.text((x, y), text, fill=color, font=font)


def classify(row: dict, iou_threshold: float) -> dict:
    """Which objects are matched / FP / FN (indices into row['pred'] / row['gt'])."""
    m = match_image(row["pred"], row["gt"], iou_threshold, "all")
    ok = [(p, g) for p, g, _iou, good in m.matches if good]
    bad = [(p, g) for p, g, _iou, good in m.matches if not good]
    return {
        "matched": ok,
        "fp": sorted(m.unmatched_pred + [p for p, _ in bad]),
        "fn": sorted(m.unmatched_gt + [g for _, g in bad]),
        "desc_mismatch": bad,
    }


def render_overlay(row: dict, iou_threshold: float = 0.5):
    """A PIL image of one artifact row (see the module docstring for the styles)."""
    from PIL import Image, ImageDraw

    with Image.open(row["image"]) as im:
        base = im.convert("RGB")
    scale = max(1.0, MIN_SIDE / min(base.size))
    w, h = round(base.width * scale), round(base.height * scale)
    fsize = 15
    font = _font(fsize)
    legend_h = 2 * fsize + 20
    canvas = Image.new("RGB", (w, h + legend_h), (255, 255, 255))
    canvas.paste(base.resize((w, h), Image.NEAREST), (0, 0))
    draw = ImageDraw.Draw(canvas)
    sb = lambda b: [b[0] * scale, b[1] * scale, (b[2] + 1) * scale - 1, (b[3] + 1) * scale - 1]  # noqa: E731
    c = classify(row, iou_threshold)
    mismatch = dict(c["desc_mismatch"])
    for _p, g in c["matched"]:
        draw.rectangle(sb(row["gt"][g]["bbox"]), outline=GREEN, width=1)
    for g in c["fn"]:
        draw.rectangle(sb(row["gt"][g]["bbox"]), outline=ORANGE, width=4)
    for p, _g in c["matched"]:
        draw.rectangle(sb(row["pred"][p]["bbox"]), outline=GREEN, width=3)
    for p in c["fp"]:
        _dashed_rect(draw, sb(row["pred"][p]["bbox"]), RED, 3)
    for g in c["fn"]:
        b = sb(row["gt"][g]["bbox"])
        _label(draw, (b[0] + 3, b[3] - 16), f"{row['gt'][g]['desc']} (missed)", ORANGE, font)
    for p, _g in c["matched"]:
        b = sb(row["pred"][p]["bbox"])
        _label(draw, (b[0] + 3, b[1] + 2), _pred_label(row["pred"][p]), GREEN, font)
    for p in c["fp"]:
        b = sb(row["pred"][p]["bbox"])
        text = _pred_label(row["pred"][p])
        if p in mismatch:
            text += f" != {row['gt'][mismatch[p]]['desc']}"
        _label(draw, (b[0] + 3, b[1] + 2), text, RED, font)
    counts = f"#{row['index']}  TP {len(c['matched'])}  FP {len(c['fp'])}  FN {len(c['fn'])}"
    draw.text((6, h + 4), counts, fill=(0, 0, 0), font=font)
    x, y2 = 6, h + fsize + 12
    for name, color in (("matched", GREEN), ("FP (dashed)", RED), ("FN", ORANGE)):
        draw.rectangle([x, y2 + 2, x + 14, y2 + fsize - 2], outline=color, width=3)
        draw.text((x + 20, y2), name, fill=color, font=font)
        x += 30 + int(draw.textlength(name, font=font))
    return canvas, c


def contact_sheet(paths: list[Path], out: Path, cols: int = 4, cell: int = 320) -> None:
    from PIL import Image

    if not paths:
        return
    rows = (len(paths) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * cell, rows * cell), (240, 240, 240))
    for i, p in enumerate(paths):
        with Image.open(p) as im:
            im.thumbnail((cell - 8, cell - 8))
            sheet.paste(im, ((i % cols) * cell + 4, (i // cols) * cell + 4))
    sheet.save(out)


def write_run(rows: list[dict], out_dir: str | Path, *, iou_threshold: float = 0.5, limit: int | None = None) -> dict:
    """Overlays for the first ``limit`` rows, the contact sheet and index.html; returns a summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chosen = rows if limit is None else rows[:limit]
    entries, pngs = [], []
    for row in chosen:
        img, c = render_overlay(row, iou_threshold)
        name = f"overlay_{row['index']:05d}.png"
        img.save(out / name)
        pngs.append(out / name)
        entries.append((row, name, c))
    contact_sheet(pngs, out / "contact_sheet.png")
    (out / "index.html").write_text(_html(entries, iou_threshold, len(rows)), encoding="utf-8")
    return {"overlays": len(pngs), "out_dir": str(out), "rows": len(rows)}


def _html(entries, thr: float, total: int) -> str:
    tp = sum(len(c["matched"]) for _, _, c in entries)
    fp = sum(len(c["fp"]) for _, _, c in entries)
    fn = sum(len(c["fn"]) for _, _, c in entries)
    cards = []
    for row, name, c in entries:
        parse = row.get("parse") or {}
        status = "parse failed" if parse.get("parse_failed") else f"{parse.get('n_valid', 0)} valid"
        status += f", {parse.get('n_dropped', 0)} dropped"
        raw = row.get("raw_output") or ""
        shown = json.dumps(raw[:300], ensure_ascii=False)  # quoted, escapes visible: whitespace-only output shows
        cards.append(
            f'<figure><a href="{name}"><img src="{name}" alt="sample {row["index"]}"></a><figcaption>'
            f"<b>#{row['index']}</b> {html.escape(Path(row.get('image') or '').name)} "
            f"{row['width']}x{row['height']}<br>TP {len(c['matched'])} / FP {len(c['fp'])} / FN {len(c['fn'])}"
            f" &middot; {html.escape(status)}<pre>{html.escape(shown)}{'…' if len(raw) > 300 else ''}</pre>"
            "</figcaption></figure>"
        )
    style = (
        "body{font-family:sans-serif;margin:16px}main{display:flex;flex-wrap:wrap;gap:12px}"
        "figure{margin:0;width:400px;border:1px solid #ccc;padding:6px}img{max-width:100%}"
        "pre{white-space:pre-wrap;word-break:break-all;font-size:11px;background:#f6f6f6;max-height:6em;"
        "overflow:auto}.g{color:#1eaa3c}.r{color:#dc1e1e}.o{color:#ff8c00}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>gt vs pred</title><style>{style}</style>"
        f"</head><body><h1>GT vs predictions</h1><p>{len(entries)} of {total} samples, IoU &ge; {thr:.2f}: "
        f"<span class=g>matched {tp}</span>, <span class=r>FP {fp} (dashed)</span>, "
        f"<span class=o>FN {fn}</span></p><main>{''.join(cards)}</main></body></html>\n"
    )


def main(argv: list[str] | None = None) -> int:
    import argparse

    from coordexp.config.issues import ConfigError
    from coordexp.infer.artifact import ArtifactError, load_artifact
    from coordexp.infer.config import load_pipeline_config

    ap = argparse.ArgumentParser(
        prog="python -m coordexp.eval.vis", description="overlay PNGs + index.html of an artifact"
    )
    ap.add_argument("config", nargs="?", help="a pipeline config with a `vis:` section")
    ap.add_argument("--artifact")
    ap.add_argument("--out")
    ap.add_argument("--limit", type=int)
    ns = ap.parse_args(argv)
    if bool(ns.config) == bool(ns.artifact):
        ap.error("give either a config or --artifact")
    try:
        if ns.config:
            v = load_pipeline_config(ns.config, require=("vis",)).vis
            artifact, out, limit, thr = v.artifact, v.output_dir, v.limit, v.iou_threshold
        else:
            artifact, limit, thr = ns.artifact, ns.limit, 0.5
            out = ns.out or str(Path(artifact).parent / "vis")
        summary = write_run(load_artifact(artifact), out, iou_threshold=thr, limit=limit)
    except ConfigError as exc:
        for issue in exc.errors:
            print(issue.format(), file=sys.stderr)
        return 2
    except (ArtifactError, OSError) as exc:
        print(f"coordexp.eval.vis: error: {exc}", file=sys.stderr)
        return 2
    print(f"coordexp.eval.vis: {json.dumps(summary, sort_keys=True)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
