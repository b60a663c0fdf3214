"""OpenSpec's rules over what the reader read (docs/validation.md): ``collate`` (the one sort key),
``conflicts`` (the one conflict rule set of a delta spec), ``structure``, ``table`` (the rule row),
``validate_spec`` and ``validate_change`` (the rule tables, in report order), ``metadata``,
``tasks``, ``validate`` (items, reports, which item a name means), ``merge`` (one delta spec into
one spec), ``retire``, ``archive`` (a whole change merged in memory, and archive's plan).
No rule opens or writes a file: they read through the run's :class:`specgen.reader.files.Files`,
and :mod:`specgen.archive` carries archive's plan out on disk.
"""
