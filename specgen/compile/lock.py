"""Lock: the fingerprints each binding was last reviewed against (doorstop's "suspect links").

``specgen.lock`` holds one line per binding, sorted, so a review shows up as a one-line diff:

    <view> <scenario-id> <module:function> <scenario-fingerprint> <check-fingerprint>

`view` is ``specs`` or an active change id. When the scenario text or the check's source
changes, its fingerprints no longer match the line and the binding is *suspect* until
`specgen review` stamps it again. `specgen generate` only adds lines for new bindings
(their author has just reviewed them) and drops lines of bindings that are gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from specgen.errors import SpecgenError

HEADER = (
    "# specgen.lock: the scenario and check fingerprints each binding was last reviewed against.\n"
    "# Written by `specgen generate` (new bindings) and `specgen review` (re-stamps); do not edit by hand.\n"
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
        return f"{self.view} {self.scenario_id} {self.check} {self.spec_fp} {self.check_fp}\n"


def read(path: Path) -> dict[tuple[str, str, str], Entry]:
    entries: dict[tuple[str, str, str], Entry] = {}
    if not path.is_file():
        return entries
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecgenError(f"cannot read the lock: {exc}", path) from None
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
        entry = Entry(*parts)
        if entry.key in entries:
            raise SpecgenError(f"duplicate lock line for {entry.scenario_id} {entry.check}; delete one", path, n)
        entries[entry.key] = entry
    return entries


def render(entries) -> str:
    return HEADER + "".join(e.line() for e in sorted(entries))


def write(path: Path, entries) -> bool:
    """Write the lock if its bytes change. True when written."""
    text = render(entries)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True
