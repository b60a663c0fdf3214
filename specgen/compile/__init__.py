"""The compiler: spec model + check modules -> scenario ids, bindings, the lock and the generated
tests (docs/compiler.md). ``identity`` (ids and fingerprints), ``registry`` (``@check`` bindings,
read without importing), ``lock`` (reviewed fingerprints), ``generator`` (+ ``templates/``),
``compiler`` (one compilation, shared by every command), ``cache``, ``stub``.
"""
