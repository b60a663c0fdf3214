"""Lock: the fingerprints each binding was last reviewed against (doorstop's "suspect links").

``specgen.lock`` holds one line per binding, sorted, so a review shows up as a one-line diff:

    <view> <scenario-id> <module:function> <scenario-fingerprint> <check-fingerprint>

`view` is ``specs`` or an active change id. When the scenario text or the check's source
changes, its fingerprints no longer match the line and the binding is *suspect* until
`specgen review` stamps it again. Only `specgen review` adds or re-stamps a line: `specgen generate`
only drops lines of bindings that are gone, so a new binding is *unreviewed* until reviewed, and an
emptied, truncated or deleted lock can never turn a binding reviewed (docs/compiler.md).

A field holding a space, a '%' or an unprintable character (a capability folder named `user auth`)
is written with those characters as %XX (UTF-8), so every line splits back into its five fields.
A line that does not parse is an error naming it (exit 2), never a line silently dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from specgen import fsio
from specgen.errors import SpecgenError

HEADER = (
    "# specgen.lock: the scenario and check fingerprints each binding was last reviewed against.\n"
    "# Written by `specgen review` (stamps) and `specgen generate` (drops gone bindings); do not edit by hand.\n"
    "# view scenario-id check scenario-fingerprint check-fingerprint\n"
)


@dataclass(frozen=True, order=True)
class Entry:
    view: str
    scenario_id: str
    check: str
    spec_fp: str
    check_fp: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.view, self.scenario_id, self.check)

    def line(self) -> str:
        return (
            " ".join(_quote(f) for f in (self.view, self.scenario_id, self.check, self.spec_fp, self.check_fp)) + "\n"
        )


_NEEDS_QUOTE = re.compile(r"[%\s]")


def _quote(field: str) -> str:
    if field.isprintable() and not _NEEDS_QUOTE.search(field):
        return field
    return "".join(
        c if c.isprintable() and not c.isspace() and c != "%" else quote(c, safe="", errors="surrogatepass")
        for c in field
    )


def _unquote(field: str) -> str:
    return unquote(field, errors="surrogatepass") if "%" in field else field


def read(path: Path, root: Path | None = None) -> dict[tuple[str, str, str], Entry]:
    """The lock's entries. `root`: a lock that is a link leading out of that folder is refused (a file outside
    the project must not decide what counts as reviewed)."""
    entries: dict[tuple[str, str, str], Entry] = {}
    if root is not None and (path.exists() or path.is_symlink()):
        fsio.confined(path, root)
    if not path.exists() and not path.is_symlink():
        return entries  # no lock yet: nothing reviewed
    try:
        text = path.read_text(encoding="utf-8")
    except IsADirectoryError:
        raise SpecgenError("the lock is a folder; remove it (specgen review writes the lock)", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise SpecgenError(f"cannot read the lock: {why}; restore it from version control", path) from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 5:
            raise SpecgenError(
                "lock line needs 5 fields (view scenario-id check scenario-fp check-fp); "
                "fix or delete the line and run `specgen review`",
                path,
                n,
            )
        try:
            entry = Entry(*(_unquote(p) for p in parts))
        except UnicodeDecodeError:
            raise SpecgenError(
                "lock line has a bad %XX escape; restore the line from version control", path, n
            ) from None
        if entry.key in entries:
            raise SpecgenError(f"duplicate lock line for {entry.scenario_id} {entry.check}; delete one", path, n)
        entries[entry.key] = entry
    return entries


def render(entries) -> str:
    return HEADER + "".join(e.line() for e in sorted(entries))


def write(path: Path, entries, root: Path | None = None) -> bool:
    """Write the lock (atomically, inside `root`) if its bytes change. True when written."""
    text = render(entries)
    try:
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass  # unreadable: replace it
    fsio.write_text(path, text, root)
    return True
