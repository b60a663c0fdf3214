"""After the tests: ``gate`` (the static gate, `specgen check`), ``manual`` (evidence records),
``verdicts`` (per check, scenario and requirement), ``render`` (Markdown and HTML, + ``templates/``)
and ``write`` (the report files and `specgen report --gate`); see docs/compiler.md.
"""
