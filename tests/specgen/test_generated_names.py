"""Tree text never becomes code: whatever a capability, change, requirement, scenario, path or checks
setting holds, the generated module and the `stub` code parse, have the shape the generator means,
and carry each name back as a literal equal to it (docs/compiler.md, "Generated tests")."""

from __future__ import annotations

import ast
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specgen.compile import generator
from specgen.compile.identity import SPECS_VIEW, RequirementRef, ScenarioRef, View
from specgen.compile.registry import Decl
from specgen.model import Requirement, Scenario

ROOT = Path("/project")
PAYLOAD = 'x"""+getattr(__import__("os"),"system")("touch PWNED")+"""'

# Any unicode, surrogates and control characters included; names cannot be empty.
text = st.text(st.characters(codec=None), min_size=1, max_size=40)
names = st.one_of(text, st.sampled_from([PAYLOAD, "a\nimport os", '"', '""', "\\", "\x00", "\ud800", "x\u2028y"]))


def _module(capability, change, requirement, scenario, body, folder, hint, bound):
    path = ROOT / "openspec" / "specs" / folder / "spec.md"
    scn = Scenario(scenario, body, 7)
    sid = f"{capability}/req/scn"
    ref = ScenarioRef(sid, capability, requirement, scn, path, "f" * 16)
    req = RequirementRef(
        capability, Requirement(requirement, "The system SHALL x.", 5, (scn,)), "req", path, "e" * 16, (ref,)
    )
    view = View(SPECS_VIEW, None, (req,)) if change is None else View(change, change, (req,))
    decl = Decl(
        "tests.checks.mod", ROOT / "c.py", "check_x", 1, 2, "d" * 16, None, capability, requirement, scenario, None
    )

    def bindings_of(view_name, scenario_id):
        return [decl] if bound else []

    fp = generator.FilePlan(view, capability, [req], bindings_of, ROOT, hint)
    return fp.text(), ref, sid


def _literal(node) -> str | None:
    assert isinstance(node, ast.Constant), ast.dump(node)  # a literal, never an expression
    return node.value


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    capability=names,
    change=st.one_of(st.none(), names),
    requirement=names,
    scenario=names,
    body=names,
    folder=names.filter(lambda s: "/" not in s and "\x00" not in s and s not in (".", "..")),
    hint=names,
    bound=st.booleans(),
)
def test_generated_module_parses_and_names_round_trip(
    capability, change, requirement, scenario, body, folder, hint, bound
):
    source, ref, sid = _module(capability, change, requirement, scenario, body, folder, hint, bound)
    source.encode("utf-8")  # writable as UTF-8 (a lone surrogate is escaped, not written raw)
    lines = source.split("\n")
    assert all(ln.startswith("#") for ln in lines[:3]), lines[:3]  # the header stays three comment lines
    tree = ast.parse(source)
    # The module is exactly: docstring, imports, [check module load, fixtures], one test function.
    doc = ast.get_docstring(tree, clean=False)
    where = f" (change {change})" if change is not None else ""
    assert doc == f"{capability}{where}: 1 scenario(s) of 1 requirement(s)."
    kinds = [type(n).__name__ for n in tree.body]
    assert kinds == ["Expr", "Import", "ImportFrom"] + (["Assign", "Expr"] if bound else []) + ["FunctionDef"]
    func = tree.body[-1]
    assert func.name == "test_req__scn"
    mark = func.decorator_list[0]
    values = {kw.arg: _literal(kw.value) for kw in mark.keywords}
    assert values["id"] == sid and values["requirement"] == requirement and values["scenario"] == scenario
    assert values["source"] == f"openspec/specs/{folder}/spec.md:7"
    assert values["view"] == (change if change is not None else SPECS_VIEW)
    fdoc = ast.get_docstring(func, clean=False)
    wanted = generator.test_doc(requirement, ref).split("\n")  # the docstring's text, line by line, indented
    assert fdoc == "\n".join([wanted[0]] + [("    " + ln) if ln else "" for ln in wanted[1:]]) + "\n    "
    assert "\n".join(wanted).startswith(f"Requirement: {requirement}\nScenario: {scenario}\nId: {sid}\n")
    call = func.body[-1].value  # _specgen.missing(id, stub) when unbound; the docstring alone when bound
    if not bound:
        assert [_literal(a) for a in call.args[:1]] == [sid]
        stub = ast.parse(_literal(call.args[1]))
        check = stub.body[0].decorator_list[0]
        assert [_literal(a) for a in check.args] == [capability, requirement, scenario]
        assert [type(n).__name__ for n in stub.body[0].body] == ["Raise"]  # the steps are comments only


def test_payload_name_is_inert_in_the_module_and_the_stub():
    source, ref, _ = _module(
        PAYLOAD, PAYLOAD, PAYLOAD, PAYLOAD, f"- **WHEN** {PAYLOAD}\n", "a\nb", "h\nimport os", False
    )
    tree = ast.parse(source)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    assert not [c for c in calls if c.func.id in ("getattr", "__import__")]  # the payload stayed text
    stub = generator.stub_code(ref)
    assert not [n for n in ast.walk(ast.parse(stub)) if isinstance(n, ast.Name) and n.id == "__import__"]


def test_file_names_are_importable_and_distinct():
    specs = View(SPECS_VIEW, None, ())
    change = View("v1.2 fix", "v1.2 fix", ())
    spaced, dotted, plain = (generator.file_name(specs, c) for c in ("user auth", "api.v2", "user_auth"))
    for name in (spaced, dotted, generator.file_name(change, "api.v2")):
        stem = Path(name).stem
        assert stem.isidentifier() and stem.isascii(), name
    assert plain == "test_user_auth.py" and len({spaced, plain}) == 2
    assert generator.file_name(specs, "chat-template") == "test_chat_template.py"  # ordinary names: unchanged
