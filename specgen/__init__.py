"""specgen: an OpenSpec-driven spec-to-test compiler.

Reads ``openspec/`` as the official OpenSpec CLI does, binds every scenario to a
registered check function, generates traceable pytest files and gates CI on the
results. It imports none of torch, transformers or ms-swift.
"""

__version__ = "0.1.0"


def __getattr__(name):
    # `from specgen import check` without importing the registry (and pytest) at
    # package import time: `python -m specgen validate` stays fast.
    if name == "check":
        from specgen.compile.registry import check

        return check
    raise AttributeError(name)
