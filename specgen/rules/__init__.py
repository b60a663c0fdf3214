"""OpenSpec's rules over what the reader read (docs/validation.md): ``collate`` (the one sort key),
``conflicts`` (the one conflict rule set of a delta spec), ``structure``, ``validate_spec``,
``metadata``, ``tasks``, ``validate_change``, ``validate`` (items and reports), ``merge`` (one
delta spec into one spec), ``retire``, ``archive`` (a whole change, in memory or on disk).
"""
