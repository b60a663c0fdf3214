"""Reading OpenSpec exactly as the official CLI does (docs/reading-openspec.md), in the order the
data flows: ``text`` (bytes -> text, JavaScript string semantics), ``files`` (one run's reads, each
file once), ``markdown`` (text -> sections), ``specs`` (main specs), ``blocks`` (requirement blocks,
the reader of validate and archive), ``deltas`` (delta specs as `show` reads them), ``tasklines``
(which line is a task), ``changes`` (proposals, tasks), ``tree`` (which files are specs and
changes), ``load`` (the whole tree -> :class:`specgen.model.Project`).
Standard library only (PyYAML for a project-local schema).
"""
