"""What reach costs, and what a `--since` run after a one-module change costs (docs/performance.md, "Proof").

1. plain: the generated tests run as CI runs them (`pytest <output> -n JOBS`), then each
   `[tool.specgen.proof] entrypoints` command on its own: their times summed;
2. reach: `specgen proof --full --jobs JOBS` (the same tests under coverage.py with a context per binding, the
   same entrypoints with every process they start measured). Ratio reach / plain; target at most 2;
3. since: one module changed (a line `_bench_probe = 1 + 1` added at the top of its first function's body, so
   it is executed and has mutation sites), then `specgen proof --jobs JOBS --mutants M --since HEAD`: the
   incremental reach (the checks that executed that module, and the entrypoints) and the mutants of the changed
   line; target under 300 s on 2 cores. The module is restored afterwards, whatever happens.

On a scratch copy of the proof fixture (tests/fixtures/proof-basic, module `calc/__init__.py`) by default;
`--repo` measures this repository in place (module `--module`, default `src/coordexp/format/coordjson.py`; start from
a clean tree: `--since HEAD` mutates every line changed since HEAD). Whole processes, median of `--repeat` runs
(default 3 on the fixture, 1 with `--repo`: its entrypoints take minutes).

    PYTHONPATH=. .venv/bin/python bench/bench_proof.py [--repeat N] [--repo [--module PATH]] [--jobs N] [--mutants M]
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROBE = "_bench_probe = 1 + 1"


def timed(argv, cwd: Path, shell: bool = False) -> float:
    """Seconds for one whole process; exits the bench when it fails to run (exit 1, failing checks, is a run)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "src")]))
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=cwd, env=env, shell=shell, capture_output=True, text=True, check=False)
    took = time.monotonic() - start
    if proc.returncode not in (0, 1):
        sys.exit(f"{argv}: exit {proc.returncode}\n{(proc.stdout + proc.stderr)[-2000:]}")
    return took


def fixture() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="bench-proof-")) / "proj"
    src = REPO / "tests" / "fixtures" / "proof-basic"
    shutil.copytree(src, folder, ignore=shutil.ignore_patterns("probe.*", "*.in", "__pycache__"))
    text = (src / "pyproject.toml.in").read_text(encoding="utf-8").replace("{python}", sys.executable)
    (folder / "pyproject.toml").write_text(text, encoding="utf-8")
    for argv in (["init", "-q"], ["add", "-A"], ["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "x"]):
        subprocess.run(["git", *argv], cwd=folder, check=True, capture_output=True)
    return folder


def probed(text: str) -> str:
    """`text` with PROBE as the first statement of its first function's body (after a docstring)."""
    tree = ast.parse(text)
    fn = next(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    body = fn.body
    doc = isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant)
    anchor = body[1] if doc and len(body) > 1 else body[0]
    lines = text.splitlines(keepends=True)
    if doc and len(body) == 1:  # only a docstring: the probe goes after it
        at, indent = body[0].end_lineno, body[0].col_offset
    else:
        at, indent = anchor.lineno - 1, anchor.col_offset
    return "".join(lines[:at]) + " " * indent + PROBE + "\n" + "".join(lines[at:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=None, help="runs per figure (default: 3, or 1 with --repo)")
    ap.add_argument("--repo", action="store_true", help="measure this repository, not the fixture")
    ap.add_argument("--module", default="src/coordexp/format/coordjson.py", help="the module changed (--repo)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--mutants", type=int, default=3, help="mutants per requirement in the --since run")
    ap.add_argument(
        "--only",
        choices=("reach", "since"),
        help="one figure: reach vs the plain run, or the --since run (default: both)",
    )
    args = ap.parse_args()
    repeat = args.repeat or (1 if args.repo else 3)
    root = REPO if args.repo else fixture()
    sys.path.insert(0, str(REPO))
    from specgen.config import load_config

    spec = [sys.executable, "-m", "specgen"]
    timed([*spec, "generate"], root)
    config = load_config(root)
    entrypoints = list(dict(config.proof)["entrypoints"])
    tests = [sys.executable, "-m", "pytest", config.output, "-q", "-p", "no:cacheprovider"]
    tests += ["-n", str(args.jobs)] if args.jobs > 1 else []
    proof = [*spec, "proof", "--jobs", str(args.jobs)]
    if args.only != "since":
        reach_figure(root, tests, entrypoints, proof, repeat)
    if args.only != "reach":
        since_figure(root, args, proof, repeat)
    if not args.repo:
        shutil.rmtree(root.parent, ignore_errors=True)


def reach_figure(root: Path, tests: list[str], entrypoints: list[str], proof: list[str], repeat: int) -> None:
    plain_tests, plain_entry, reach = [], [], []
    for _ in range(repeat):
        plain_tests.append(timed(tests, root))
        plain_entry.append(sum(timed(e, root, shell=True) for e in entrypoints))
        reach.append(timed([*proof, "--full"], root))
    t, e, r = statistics.median(plain_tests), statistics.median(plain_entry), statistics.median(reach)
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPU(s)")
    print(
        f"plain: generated tests {t:.1f}s + entrypoints {e:.1f}s = {t + e:.1f}s; "
        f"specgen proof --full (reach): {r:.1f}s; ratio {r / (t + e):.2f} (target <= 2; median of {repeat})"
    )


def since_figure(root: Path, args, proof: list[str], repeat: int) -> None:
    module = root / (args.module if args.repo else "calc/__init__.py")
    original = module.read_bytes()
    since = []
    try:
        for _ in range(repeat):
            timed([*proof], root)  # the records match the unchanged tree again (not timed)
            module.write_text(probed(original.decode("utf-8")), encoding="utf-8")
            since.append(timed([*proof, "--mutants", str(args.mutants), "--since", "HEAD"], root))
            module.write_bytes(original)
    finally:
        module.write_bytes(original)
    print(
        f"one module changed ({module.relative_to(root).as_posix()}), specgen proof --mutants {args.mutants} "
        f"--since HEAD: {statistics.median(since):.1f}s (target < 300 s; median of {repeat})"
    )
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPU(s)")


if __name__ == "__main__":
    main()
