"""Per-image set matching and the reference's F1-style metrics (location first, then desc).

Matching (one IoU threshold): every (pred, gt) pair with IoU >= thr is a candidate; candidates
are taken greedily by descending IoU, ties by descending pred score, then by the pred's box and
desc, then gt index (never by the order the preds were written, so a permutation of an image's
preds changes no count), each pred and each gt used once. IoU is the bbox IoU in pixel space
(``[x1, y1, x2, y2]``, continuous coordinates, area = w * h).

Per image, location-only counts: tp_loc = matches, fp_loc = preds in scope - matched,
fn_loc = gts - matched. A matched pair whose descs agree (after ``normalize_desc``) is
``sem_ok``, otherwise ``sem_bad``; the full counts charge a desc mismatch twice, as the
reference does: tp_full = sem_ok, fp_full = fp_loc + sem_bad, fn_full = fn_loc + sem_bad.

Prediction scope: ``annotated`` (the reference's default) evaluates only the predictions whose
desc is one of the image's GT descs, the others are ignored and counted (``pred_ignored``);
``all`` evaluates every prediction. The reference widens "same desc" with a sentence-embedding
similarity (all-MiniLM-L6-v2, cosine >= 0.6); this evaluator has no model download and uses
exact equality of normalized descs, so a synonym counts as a mismatch here.

Precision with no prediction is 1.0, recall with no GT is 1.0, F1 is 0.0 when both P and R are
0 (the reference's conventions). Micro sums counts over images; macro averages per-image values.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def normalize_desc(desc: str) -> str:
    return " ".join(str(desc).lower().split())


def bbox_iou(a, b) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def pred_score(pred: dict, default: float = 1.0) -> float:
    """A prediction's score (``default`` when it has none)."""
    s = pred.get("score")
    return float(s) if s is not None else default


def greedy_match(preds: list, gts: list, thr: float, tie_keys: list | None = None) -> list[tuple[int, int, float]]:
    """[(pred_idx, gt_idx, iou)] for bbox lists, by the rule in the module docstring; ``tie_keys[i]`` orders
    pred i among candidates of equal IoU (default: its index)."""
    keys = tie_keys if tie_keys is not None else list(range(len(preds)))
    cands = [(bbox_iou(p, g), i, j) for i, p in enumerate(preds) for j, g in enumerate(gts)]
    cands = sorted((c for c in cands if c[0] >= thr), key=lambda c: (-c[0], keys[c[1]], c[2], c[1]))
    used_p: set[int] = set()
    used_g: set[int] = set()
    out = []
    for iou, i, j in cands:
        if i in used_p or j in used_g:
            continue
        used_p.add(i)
        used_g.add(j)
        out.append((i, j, iou))
    return out


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp > 0 else 1.0
    r = tp / (tp + fn) if tp + fn > 0 else 1.0
    f1 = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return p, r, f1


@dataclass
class ImageMatch:
    """One image at one threshold. Indices are into the image's full pred / gt lists."""

    matches: list[tuple[int, int, float, bool]]  # (pred_idx, gt_idx, iou, desc_ok)
    unmatched_pred: list[int]
    unmatched_gt: list[int]
    ignored_pred: list[int]

    def counts(self) -> dict[str, int]:
        ok = sum(1 for m in self.matches if m[3])
        bad = len(self.matches) - ok
        tp, fp, fn = len(self.matches), len(self.unmatched_pred), len(self.unmatched_gt)
        return {
            "tp_loc": tp,
            "fp_loc": fp,
            "fn_loc": fn,
            "sem_ok": ok,
            "sem_bad": bad,
            "tp_full": ok,
            "fp_full": fp + bad,
            "fn_full": fn + bad,
        }


def match_image(pred: list[dict], gt: list[dict], thr: float, pred_scope: str = "annotated") -> ImageMatch:
    """``pred`` / ``gt``: artifact objects ({desc, bbox, ...})."""
    gt_descs = {normalize_desc(g["desc"]) for g in gt}
    scoped = [i for i, p in enumerate(pred) if pred_scope == "all" or normalize_desc(p["desc"]) in gt_descs]
    ignored = [i for i in range(len(pred)) if i not in set(scoped)]
    keys = [(-pred_score(pred[i]), list(pred[i]["bbox"]), normalize_desc(pred[i]["desc"])) for i in scoped]
    raw = greedy_match([pred[i]["bbox"] for i in scoped], [g["bbox"] for g in gt], thr, keys)
    matches = [
        (scoped[i], j, iou, normalize_desc(pred[scoped[i]]["desc"]) == normalize_desc(gt[j]["desc"]))
        for i, j, iou in raw
    ]
    mp = {m[0] for m in matches}
    mg = {m[1] for m in matches}
    return ImageMatch(matches, [i for i in scoped if i not in mp], [j for j in range(len(gt)) if j not in mg], ignored)


@dataclass
class F1Accumulator:
    thr: float
    totals: dict = field(
        default_factory=lambda: dict.fromkeys(
            (
                "tp_loc",
                "fp_loc",
                "fn_loc",
                "sem_ok",
                "sem_bad",
                "tp_full",
                "fp_full",
                "fn_full",
                "pred_total",
                "pred_eval",
                "pred_ignored",
            ),
            0,
        )
    )
    per_image_loc: list = field(default_factory=list)
    per_image_full: list = field(default_factory=list)

    def add(self, m: ImageMatch, n_pred: int) -> None:
        c = m.counts()
        for k, v in c.items():
            self.totals[k] += v
        self.totals["pred_total"] += n_pred
        self.totals["pred_ignored"] += len(m.ignored_pred)
        self.totals["pred_eval"] += n_pred - len(m.ignored_pred)
        self.per_image_loc.append(prf(c["tp_loc"], c["fp_loc"], c["fn_loc"]))
        self.per_image_full.append(prf(c["tp_full"], c["fp_full"], c["fn_full"]))

    def metrics(self) -> dict[str, float]:
        t = self.totals
        pre = f"f1ish@{self.thr:.2f}_"
        out = {pre + k: float(v) for k, v in t.items()}
        for kind, per in (("loc", self.per_image_loc), ("full", self.per_image_full)):
            p, r, f1 = prf(t[f"tp_{kind}"], t[f"fp_{kind}"], t[f"fn_{kind}"])
            out.update({f"{pre}precision_{kind}_micro": p, f"{pre}recall_{kind}_micro": r, f"{pre}f1_{kind}_micro": f1})
            n = len(per)
            out.update(
                {
                    f"{pre}precision_{kind}_macro": sum(x[0] for x in per) / n if n else 0.0,
                    f"{pre}recall_{kind}_macro": sum(x[1] for x in per) / n if n else 0.0,
                    f"{pre}f1_{kind}_macro": sum(x[2] for x in per) / n if n else 0.0,
                }
            )
        out[pre + "sem_acc_on_matched"] = t["sem_ok"] / t["tp_loc"] if t["tp_loc"] else 1.0
        return out
