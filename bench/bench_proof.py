"""What reach costs: `specgen proof` (generated tests under coverage.py, one context per binding, plus the
entrypoints under coverage.py) against its peer, the same tests and entrypoints run plainly; and a `--since`
mutation run after a one-module change.

On the proof fixture (tests/fixtures/proof-basic, a copy in a scratch folder) by default; `--repo` measures this
repository instead (its [tool.specgen.proof]: the smokes take minutes each, so use `--repeat 1` there). Whole
processes, median of `--repeat` runs; prints the ratio reach / (tests + entrypoints).

    PYTHONPATH=. .venv/bin/python bench/bench_proof.py [--repeat 3] [--repo] [--jobs N]

See docs/performance.md for the figures measured here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(argv, cwd: Path, shell: bool = False) -> float:
    env = dict(os.environ, PYTHONPATH=str(REPO))
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
    subprocess.run(
        [sys.executable, "-m", "specgen", "generate"],
        cwd=folder,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        check=True,
        capture_output=True,
    )
    return folder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--repo", action="store_true", help="measure this repository, not the fixture")
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args()
    root = REPO if args.repo else fixture()
    sys.path.insert(0, str(REPO))
    from specgen.config import load_config

    config = load_config(root)
    entrypoints = list(dict(config.proof)["entrypoints"])
    tests = [sys.executable, "-m", "pytest", config.output, "-q", "-p", "no:cacheprovider"]
    tests += ["-n", str(args.jobs)] if args.jobs > 1 else []
    proof = [sys.executable, "-m", "specgen", "proof", "--jobs", str(args.jobs)]
    plain, reach = [], []
    for _ in range(args.repeat):
        plain.append(timed(tests, root) + sum(timed(e, root, shell=True) for e in entrypoints))
        reach.append(timed(proof, root))
    p, r = statistics.median(plain), statistics.median(reach)
    print(
        f"tests + entrypoints: {p:.1f}s; specgen proof (reach): {r:.1f}s; ratio {r / p:.2f} (median of {args.repeat})"
    )
    if not args.repo:  # a one-module change, then a --since mutation run
        product = root / "calc" / "__init__.py"
        product.write_text(product.read_text(encoding="utf-8").replace("return a + b", "return b + a"), "utf-8")
        since = [timed([*proof, "--mutants", "20", "--since", "HEAD"], root) for _ in range(args.repeat)]
        print(f"specgen proof --mutants 20 --since HEAD after a one-line change: {statistics.median(since):.1f}s")
        shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
