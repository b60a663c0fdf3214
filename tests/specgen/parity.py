"""Parity plumbing: what the OpenSpec CLI prints for a corpus, and what specgen prints.

A corpus is a folder holding `openspec/`. For each one we ask the oracle (in one batch) for
`list --specs --json`, `list --json`, `show <id> --json --type spec|change` for every spec and
active change, and `show` for every archived change through a scratch root whose
`openspec/changes` is a link to the archive (the CLI cannot show archived changes otherwise).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from specgen.cli import main as specgen_main
from specgen.cli.views import change_json, dumps
from specgen.reader.changes import parse_change
from specgen.reader.load import find_openspec_root as find_root
from specgen.reader.tree import active_change_ids, archived_change_ids, spec_ids
from tests.specgen import corpora
from tests.specgen.oracle import REPO
from tests.specgen.oracle_batch import run_batch

FIXTURES = REPO / "tests" / "fixtures" / "parity-parse"

# name -> folder holding openspec/
CORPORA: dict[str, Path] = {
    "project": REPO,
    **{name: corpora.corpus(name) for name in corpora.NAMES},
    **{f"fixture:{p.name}": p for p in sorted(FIXTURES.iterdir()) if (p / "openspec").is_dir()},
}


def strip_extras(payload):
    """specgen's JSON minus what it adds (`name`, `line`, `id` on requirements and scenarios)."""
    if isinstance(payload, dict):
        out = {k: strip_extras(v) for k, v in payload.items()}
        if "rawText" in out or ("text" in out and "scenarios" in out):
            out.pop("name", None)
            out.pop("line", None)
            out.pop("id", None)
        return out
    if isinstance(payload, list):
        return [strip_extras(x) for x in payload]
    return payload


def run_specgen(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = specgen_main(list(argv))
    return rc, out.getvalue(), err.getvalue()


@dataclass(frozen=True)
class Item:
    corpus: str
    kind: str  # list-specs | list-changes | spec | change | archived | any (show without --type)
    id: str = ""

    def __str__(self) -> str:
        return f"{self.corpus}:{self.kind}" + (f":{self.id}" if self.id else "")


# `show` of ids that name nothing, or name something oddly: the CLI's failures and path rules.
EXTRA_ITEMS: dict[str, list[Item]] = {
    "fixture:specs-structure": [
        *(Item("fixture:specs-structure", "spec", i) for i in ("../x", "area/../alpha", "area", "./alpha", ".hidden", "missing")),
        *(Item("fixture:specs-structure", "any", i) for i in ("alpah", "area/nested-cap", "zzz")),
    ],
    "fixture:changes-deltas": [
        *(Item("fixture:changes-deltas", "change", i) for i in (
            "../x", "basic/", "./basic", ".hidden-change", "archive", "archive/2025-01-01-old", "nope",
            "IMPLEMENTATION_ORDER.md", "namespace", "empty-folder")),
        *(Item("fixture:changes-deltas", "any", i) for i in ("basic", "auth", "bsaic", ".hidden-change")),
    ],
}


def corpus_items(name: str) -> list[Item]:
    folder = CORPORA[name]
    items = [Item(name, "list-specs"), Item(name, "list-changes")]
    root = find_root(folder)
    if root is None or Path(root) != folder.resolve():
        return items
    items += [Item(name, "spec", s) for s in spec_ids(root)]
    items += [Item(name, "change", c) for c in active_change_ids(root)]
    items += [Item(name, "archived", c) for c in archived_change_ids(root)]
    items += EXTRA_ITEMS.get(name, [])
    return items


@functools.cache
def _archive_root(folder: str) -> str:
    """A scratch root whose openspec/changes is a link to `folder`'s archive."""
    tmp = Path(tempfile.mkdtemp(prefix="parity-archive-"))
    (tmp / "openspec").mkdir()
    os.symlink(Path(folder) / "openspec" / "changes" / "archive", tmp / "openspec" / "changes")
    return str(tmp)


def _job(item: Item) -> dict:
    cwd = str(CORPORA[item.corpus])
    if item.kind == "list-specs":
        return {"cmd": "list", "cwd": cwd, "mode": "specs"}
    if item.kind == "list-changes":
        return {"cmd": "list", "cwd": cwd, "mode": "changes"}
    if item.kind == "archived":
        return {"cmd": "show", "cwd": _archive_root(cwd), "id": item.id, "type": "change"}
    if item.kind == "any":
        return {"cmd": "show", "cwd": cwd, "id": item.id}
    return {"cmd": "show", "cwd": cwd, "id": item.id, "type": item.kind}


@functools.cache
def oracle_outputs(name: str) -> dict[Item, dict]:
    """Every item of a corpus through the oracle, in one Node process."""
    items = corpus_items(name)
    results = run_batch([_job(i) for i in items])
    return dict(zip(items, results))


def specgen_output(item: Item) -> tuple[int, str]:
    """(exit code, stdout) of specgen for the item (archived: the model rendered as `show`)."""
    folder = str(CORPORA[item.corpus])
    if item.kind == "list-specs":
        rc, out, _ = run_specgen("list", "--specs", "--json", "--root", folder)
    elif item.kind == "list-changes":
        rc, out, _ = run_specgen("list", "--json", "--root", folder)
    elif item.kind == "archived":
        change = parse_change(Path(folder) / "openspec" / "changes" / "archive" / item.id, True, Path(folder))
        if change.error:
            from specgen.cli.views import status_json

            msg = change.error
            if not change.has_proposal:
                msg = (f'Change "{item.id}" has no proposal.md yet. Run "openspec status --change {item.id}" '
                       "to see which artifact comes next.")
            return 2, dumps({"status": [status_json(msg, "show_error")]}) + "\n"
        payload = change_json(change, Path(os.path.realpath(_archive_root(folder))))
        return 0, dumps(payload) + "\n"
    elif item.kind == "any":
        rc, out, _ = run_specgen("show", item.id, "--json", "--root", folder)
    else:
        rc, out, _ = run_specgen("show", item.id, "--type", item.kind, "--json", "--root", folder)
    return rc, out


def compare(item: Item) -> str | None:
    """None when specgen prints what the CLI prints (extras aside), else a readable diff."""
    oracle = oracle_outputs(item.corpus)[item]
    rc, out = specgen_output(item)
    try:
        mine = dumps(strip_extras(json.loads(out))) + "\n"
    except json.JSONDecodeError as exc:
        return f"specgen printed no JSON ({exc}): {out[:500]!r}"
    expected = oracle["stdout"]
    # Exit codes: the CLI fails with 1, specgen with 2 (documented); success is 0 for both.
    if (rc == 0) != (oracle["exitCode"] == 0):
        return f"exit {rc} vs oracle {oracle['exitCode']}\n--- oracle\n{expected[:2000]}\n--- specgen\n{mine[:2000]}"
    if mine == expected:
        return None
    import difflib

    diff = difflib.unified_diff(expected.splitlines(True), mine.splitlines(True), "openspec", "specgen", n=2)
    return "".join(list(diff)[:200])
