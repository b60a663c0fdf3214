"""YAML files with line numbers, and `extends` / `inherit` resolution.

Loading keeps, for every key and list item, the file and line that set it (``marks``), so that a
problem found much later (a coherence gate over the merged tree) can still point at the line to
edit. Two YAML traps are closed here: duplicate keys (PyYAML keeps the last one silently) are an
error, and ``1e-4`` is read as a float (YAML 1.1 reads it as the string "1e-4").

A config file is input, possibly hostile, so reading one is bounded: the text must be UTF-8; nesting
is at most ``MAX_DEPTH`` levels; the tree, with every alias and merge key expanded, holds at most
``MAX_NODES`` nodes (a nine-level alias bomb expands to 9**9); an anchor that contains its own alias
is refused; an ``extends`` list names a base once, and one load reads at most ``MAX_BASE_READS``
bases (a chain of ``extends: [b, b]`` doubles per level). Each is one issue at the file and line,
checked before anything is expanded, so the refusal is fast.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .issues import Issue, KeyPath, Loc, dotted

EXTENDS_KEYS = ("extends", "inherit")  # `inherit` is an alias of `extends`
MAX_DEPTH = 64  # nesting levels; real configs use fewer than ten
MAX_NODES = 100_000  # nodes after alias and merge-key expansion; real configs hold a few hundred
MAX_BASE_READS = 64  # base files read by one load, repeats included; real chains read three or four


class _Loader(yaml.SafeLoader):
    """SafeLoader plus YAML 1.2 floats (``1e-4``, ``5E3``), which YAML 1.1 leaves as strings."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


@dataclass
class YamlDoc:
    """One parsed file: its data, and the line of every key path in it."""

    path: Path
    data: dict
    marks: dict[KeyPath, Loc]


def load_yaml(path: Path, issues: list[Issue]) -> YamlDoc | None:
    """Parse one file; problems are appended to ``issues`` (None when the file is unusable)."""
    file = str(path)
    text = _read_text(path, issues)
    if text is None:
        return None
    loader = _Loader(text)
    try:
        _check_depth(text, file)
        node = loader.get_single_node()
        marks: dict[KeyPath, Loc] = {}
        if node is not None:
            _check_size(node, file)
        data = _build(loader, node, (), file, marks, issues) if node is not None else {}
    except _TooBig as exc:
        issues.append(Issue(Loc(file, exc.line), "", exc.message))
        return None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        issues.append(Issue(Loc(file, line), "", f"invalid YAML: {problem}"))
        return None
    finally:
        loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        issues.append(
            Issue(Loc(file, 1), "", f"a config file must be a mapping of sections, got a {type(data).__name__}")
        )
        return None
    return YamlDoc(path, data, marks)


def _read_text(path: Path, issues: list[Issue]) -> str | None:
    file = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        issues.append(Issue(Loc(file, 1), "", f"cannot read config file: {exc.strerror or exc}"))
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        issues.append(
            Issue(
                Loc(file, line),
                "",
                f"not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start}): a config file is UTF-8 YAML",
            )
        )
        return None


class _TooBig(Exception):
    """A file past one of the reading bounds (MAX_DEPTH, MAX_NODES) or with a recursive anchor."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line, self.message = line, message


def _check_depth(text: str, file: str) -> None:
    """Nesting past MAX_DEPTH, from the event stream: PyYAML's parser iterates, its composer recurses,
    so the depth is known before composing could exhaust the stack."""
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise _TooBig(
                    event.start_mark.line + 1, f"nesting deeper than {MAX_DEPTH} levels: a config is a shallow tree"
                )
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def _check_size(root: yaml.Node, file: str) -> None:
    """The node count with every alias and merge key expanded, computed once per distinct node (so an
    alias bomb is measured, not expanded); an anchor reached again from inside itself is a cycle."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = _children(node)
        if done:
            open_.discard(key)
            sizes[key] = min(1 + sum(sizes[id(c)] for c in children), MAX_NODES + 1)
            continue
        if key in sizes:
            continue
        if key in open_:
            raise _TooBig(node.start_mark.line + 1, "an anchor contains an alias of itself (a recursive structure)")
        open_.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in open_:
                raise _TooBig(
                    child.start_mark.line + 1, "an anchor contains an alias of itself (a recursive structure)"
                )
            if id(child) not in sizes:
                stack.append((child, False))
    if sizes[id(root)] > MAX_NODES:
        raise _TooBig(
            root.start_mark.line + 1,
            f"more than {MAX_NODES} values once aliases are expanded (an alias bomb?): write the values out",
        )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


_PLAIN_TAGS = {yaml.MappingNode: "tag:yaml.org,2002:map", yaml.SequenceNode: "tag:yaml.org,2002:seq"}


def _build(loader: _Loader, node: yaml.Node, path: KeyPath, file: str, marks: dict, issues: list[Issue]) -> Any:
    expected = _PLAIN_TAGS.get(type(node))
    if expected is not None and node.tag != expected:  # e.g. `!!python/object`: never constructed, never ignored
        raise yaml.constructor.ConstructorError(None, None, f"unsupported YAML tag {node.tag!r}", node.start_mark)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # `<<: *anchor` merge keys
        out: dict = {}
        for key_node, value_node in node.value:
            key = _scalar(loader, key_node)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                issues.append(Issue(Loc(file, line), dotted(path), f"config keys must be strings, got {key!r}"))
                key = str(key)
            if key in out:
                first = marks.get(path + (key,))
                issues.append(
                    Issue(
                        Loc(file, line),
                        dotted(path + (key,)),
                        f"duplicate key (first set at line {first.line if first else '?'}); "
                        "YAML would silently keep only the last value: keep one",
                    )
                )
            marks[path + (key,)] = Loc(file, line)
            out[key] = _build(loader, value_node, path + (key,), file, marks, issues)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            marks[path + (i,)] = Loc(file, item.start_mark.line + 1)
            items.append(_build(loader, item, path + (i,), file, marks, issues))
        return items
    return _scalar(loader, node)


def _scalar(loader: _Loader, node: yaml.Node) -> Any:
    """A leaf value; Python refuses some YAML scalars itself (an integer of more than 4,300 digits)."""
    try:
        return loader.construct_object(node, deep=True)
    except (ValueError, OverflowError) as exc:
        text = str(exc).split(";")[0]
        raise yaml.constructor.ConstructorError(
            None, None, f"unreadable value ({text}): write a number of reasonable size", node.start_mark
        ) from None


@dataclass
class ConfigTree:
    """The merged config of a leaf file and all its bases."""

    leaf: Path
    data: dict
    marks: dict[KeyPath, Loc]
    files: list[Path] = field(default_factory=list)  # every file read, bases first, leaf last
    leaf_doc: YamlDoc | None = None  # the leaf as written (before merging), for the profile contract
    base_reads: int = 0  # base files read so far (bounded by MAX_BASE_READS)


def _drop_prefix(marks: dict[KeyPath, Loc], prefix: KeyPath) -> None:
    n = len(prefix)
    for k in [k for k in marks if k[:n] == prefix]:
        del marks[k]


def _merge(base: dict, base_marks: dict, top: dict, top_marks: dict, prefix: KeyPath = ()) -> dict:
    """Deep-merge ``top`` over ``base`` (dicts merge, lists and scalars replace), moving marks along."""
    out = dict(base)
    for key, value in top.items():
        path = prefix + (key,)
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], base_marks, value, top_marks, path)
            base_marks[path] = top_marks.get(path, base_marks.get(path))
        else:
            out[key] = value
            _drop_prefix(base_marks, path)
            n = len(path)
            base_marks.update({k: v for k, v in top_marks.items() if k[:n] == path})
    return out


def load_tree(leaf: Path, issues: list[Issue]) -> ConfigTree | None:
    """Load ``leaf`` and its `extends` chain; cycles and missing bases are errors naming the chain."""
    leaf = Path(leaf).resolve()
    tree = ConfigTree(leaf, {}, {})
    result = _resolve(leaf, (), tree, issues)
    if result is None:
        return None
    tree.data, tree.marks = result
    return tree


def _resolve(path: Path, chain: tuple[Path, ...], tree: ConfigTree, issues: list[Issue]):
    doc = load_yaml(path, issues)
    if doc is None:
        return None
    if not chain:
        tree.leaf_doc = YamlDoc(doc.path, dict(doc.data), dict(doc.marks))
    data, marks = doc.data, doc.marks
    present = [k for k in EXTENDS_KEYS if k in data]
    if len(present) > 1:
        issues.append(
            Issue(
                marks[(present[1],)],
                present[1],
                "both `extends` and its alias `inherit` are set: use one `extends:` (a string or a list)",
            )
        )
    bases: list[tuple[str, Loc]] = []
    for key in present:
        raw = data.pop(key)
        loc = marks[(key,)]
        values = raw if isinstance(raw, list) else [raw]
        seen: set[str] = set()
        for i, value in enumerate(values):
            if not isinstance(value, str) or not value.strip():
                issues.append(Issue(loc, key, f"must be a file path or a list of file paths, got {value!r}"))
                continue
            if value in seen:
                issues.append(
                    Issue(marks.get((key, i), loc), key, f"lists {value!r} twice: a base is merged once, name it once")
                )
                continue
            seen.add(value)
            bases.append((value, marks.get((key, i), loc) if isinstance(raw, list) else loc))
        _drop_prefix(marks, (key,))
    merged: dict = {}
    merged_marks: dict[KeyPath, Loc] = {}
    ok = True
    for ref, loc in bases:
        base = (path.parent / ref).resolve()
        if base in chain or base == path:
            cycle = " -> ".join(p.name if p.parent == path.parent else str(p) for p in (*chain, path, base))
            issues.append(Issue(loc, "extends", f"extends cycle: {cycle}; a config cannot extend itself"))
            ok = False
            continue
        if not base.is_file():
            issues.append(
                Issue(loc, "extends", f"base config {ref!r} not found (resolved relative to this file: {base})")
            )
            ok = False
            continue
        tree.base_reads += 1
        if tree.base_reads > MAX_BASE_READS:
            if tree.base_reads == MAX_BASE_READS + 1:  # reported once, where the bound was crossed
                issues.append(
                    Issue(
                        loc,
                        "extends",
                        f"more than {MAX_BASE_READS} base files read through `extends` (a base reached by many "
                        "paths is read once per path): flatten the chain",
                    )
                )
            return None
        sub = _resolve(base, (*chain, path), tree, issues)
        if sub is None:
            ok = False
            continue
        merged = _merge(merged, merged_marks, sub[0], sub[1])
    tree.files.append(path)
    merged = _merge(merged, merged_marks, data, marks)
    return (merged, merged_marks) if ok else None
