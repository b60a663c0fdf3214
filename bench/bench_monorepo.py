"""Benchmark: specgen on a synthetic tree shaped like a large public monorepo.

The tree (deterministic from --seed): 400 specs holding 13,000 scenarios, 11 of them in nested capability
folders (`openspec/specs/<group>/<cap>/spec.md`), emoji and CJK in requirement and scenario headings,
tables and code fences holding `###` lines in requirement text, continuation lines in steps; half the
scenarios bound to checks in `tests/checks/` (the README's configuration). `--flat` leaves out the nested
folders (for a specgen that cannot compile them yet).

Measured, whole process, median of --runs runs: cold `specgen generate` (no tests/generated, no build/, no
lock), no-op `generate`, `check`, `report` (by default WITHOUT a results file: every scenario is counted
missing; `--with-results` runs `pytest tests/generated` once first and times that too), the peak RSS of
any of those processes, and the time headless Chromium takes to load report.html and screenshot it
(beside the time it takes for about:blank; skipped with a notice where `chromium` is absent).
Targets: cold generate < 3 s, no-op < 0.5 s, check < 1.5 s, report < 3 s, peak RSS < 300 MB, html < 2 s.

usage: python bench/bench_monorepo.py [--runs N] [--seed S] [--flat] [--with-results] [--quick] [--keep DIR]
--quick: one run each, no Chromium. Exits 1 when a target is missed or a command fails.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import shutil
import sys
import tempfile
from pathlib import Path

import timing

SPECS, SCENARIOS, NESTED = 400, 13_000, 11
TARGETS = {"generate (cold)": 3.0, "generate (no-op)": 0.5, "check": 1.5, "report": 3.0, "report.html in Chromium": 2.0}
RSS_TARGET_MB = 300
WORDS = (
    "ledger",
    "upload",
    "search",
    "billing",
    "session",
    "token",
    "export",
    "import",
    "quota",
    "audit",
    "render",
    "cache",
    "policy",
    "stream",
    "index",
    "webhook",
    "tenant",
    "invoice",
    "schema",
    "router",
)
DECOR = ("🚀", "✨", "数据处理", "日本語テキスト", "📦 配送", "")
PYPROJECT = (
    '[tool.specgen]\nspecs = "openspec"\nchecks = ["tests.checks"]\noutput = "tests/generated"\n\n'
    '[tool.pytest.ini_options]\npythonpath = ["."]\n'
)


def _capabilities(rng: random.Random, flat: bool) -> list[str]:
    caps = [f"{rng.choice(WORDS)}-{rng.choice(WORDS)}-{i:03d}" for i in range(SPECS)]
    if not flat:
        for i in rng.sample(range(SPECS), NESTED):
            caps[i] = f"{rng.choice(('platform', 'apps', 'services'))}/{caps[i]}"
    return caps


def _scenario_counts(rng: random.Random) -> list[list[int]]:
    """Per spec, per requirement: how many scenarios (each requirement has one at least; 13,000 in all)."""
    reqs = [[1] * rng.randint(5, 13) for _ in range(SPECS)]
    slots = [(s, r) for s, spec in enumerate(reqs) for r in range(len(spec))]
    for _ in range(SCENARIOS - len(slots)):
        s, r = rng.choice(slots)
        reqs[s][r] += 1
    return reqs


def _requirement_text(rng: random.Random, name: str, k: int) -> list[str]:
    lines = [f"The system SHALL handle {name.lower()} for every tenant."]
    if k % 5 == 0:
        lines += ["", "| field | type | note |", "|---|---|---|", "| id | int | 主键 |", "| name | str | 🚀 |"]
    if k % 6 == 0:
        lines += [
            "",
            "```markdown",
            "### Requirement: not a requirement (inside a fence)",
            "#### Scenario: not a scenario either",
            "```",
        ]
    return lines + [""]


def synth(root: Path, seed: int, flat: bool) -> tuple[int, int]:
    """Write the tree; (specs, scenarios bound to a check)."""
    rng = random.Random(seed)
    (root / "tests" / "checks").mkdir(parents=True)
    (root / "tests" / "__init__.py").touch()
    (root / "tests" / "checks" / "__init__.py").touch()
    (root / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    bound = 0
    for cap, counts in zip(_capabilities(rng, flat), _scenario_counts(rng), strict=True):
        spec = [
            f"# {cap} Specification",
            "",
            "## Purpose",
            f"The {cap} capability of a large monorepo, synthesised for the benchmark.",
            "",
            "## Requirements",
        ]
        checks = ["from specgen import check", ""]
        for k, n in enumerate(counts):
            req = f"{rng.choice(WORDS).title()} {rng.choice(WORDS)} rule {k} {rng.choice(DECOR)}".strip()
            spec += [f"### Requirement: {req}", *_requirement_text(rng, req, k)]
            for j in range(n):
                scn = f"Case {j} {rng.choice(WORDS)} {rng.choice(DECOR)}".strip()
                spec += [
                    f"#### Scenario: {scn}",
                    f"- **WHEN** {rng.choice(WORDS)} input {j} arrives",
                    f"- **THEN** the {rng.choice(WORDS)} result is recorded,",
                    "  with its audit trail",
                    "- **AND** nothing else changes",
                    "",
                ]
                if (k + j) % 2 == 0:
                    bound += 1
                    checks += [
                        "",
                        f"@check({cap!r}, {req!r}, {scn!r})",
                        f"def check_{k}_{j}():",
                        f"    assert {j} == {j}",
                        "",
                    ]
        path = root / "openspec" / "specs" / cap / "spec.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(spec), encoding="utf-8")
        (root / "tests" / "checks" / f"{cap.replace('/', '_').replace('-', '_')}.py").write_text(
            "\n".join(checks), encoding="utf-8"
        )
    return SPECS, bound


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def _wipe(root: Path) -> None:
    for rel in ("tests/generated", "build"):
        shutil.rmtree(root / rel, ignore_errors=True)
    (root / "specgen.lock").unlink(missing_ok=True)


def _measure(name: str, args: list[str], root: Path, runs: int, reset=None) -> timing.Run:
    done = []
    for _ in range(runs):
        if reset:
            reset(root)
        r = timing.specgen(args, root, timeout=600)
        if r.rc not in (0, 1) or "internal error" in r.out or "Traceback" in r.out:
            raise SystemExit(f"{name}: specgen {' '.join(args)} exited {r.rc}:\n{r.out[-2000:]}")
        done.append(r)
    return timing.median(done)


def _chromium(root: Path, runs: int) -> tuple[float, float] | None:
    """(median seconds for report.html, for about:blank), or None without chromium."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        print("notice: no `chromium` on PATH; report.html load time not measured (Debian: apt-get install -y chromium)")
        return None
    html = root / "build" / "specgen" / "report.html"

    def load(url: str) -> float:
        shot = root / "build" / "shot.png"
        argv = [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,1024",
            f"--screenshot={shot}",
            url,
        ]
        walls = []
        for _ in range(runs):
            shot.unlink(missing_ok=True)
            r = timing.run(argv, root, timeout=120)
            if r.rc is None or not shot.exists():
                raise SystemExit(f"chromium did not screenshot {url} (exit {r.rc}):\n{r.out[-1500:]}")
            walls.append(r.wall)
        return sorted(walls)[len(walls) // 2]

    return load(html.as_uri()), load("about:blank")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--flat", action="store_true", help="no nested capability folders")
    ap.add_argument("--with-results", action="store_true", help="run the generated tests before the report")
    ap.add_argument("--quick", action="store_true", help="one run each, no Chromium")
    ap.add_argument("--keep", type=Path, help="build the tree here and keep it")
    args = ap.parse_args()
    runs = 1 if args.quick else args.runs
    tmp = None if args.keep else tempfile.TemporaryDirectory(prefix="bench-monorepo-")
    root = args.keep or Path(tmp.name)
    try:
        return _bench(root, args, runs)
    finally:
        if tmp:
            tmp.cleanup()


def _bench(root: Path, args, runs: int) -> int:
    specs, bound = synth(root, args.seed, args.flat)
    print(
        f"tree: {specs} specs, {SCENARIOS:,} scenarios ({bound:,} bound), "
        f"{'no' if args.flat else NESTED} nested capability folders, seed {args.seed}, digest {digest(root)}"
    )
    print(f"median of {runs} run(s); {timing.load()}")
    fig = {
        "generate (cold)": _measure("generate (cold)", ["generate"], root, runs, reset=_wipe),
        "generate (no-op)": _measure("generate (no-op)", ["generate"], root, runs),
        "check": _measure("check", ["check"], root, runs),
    }
    if args.with_results:
        tests = timing.run(
            [sys.executable, "-P", "-m", "pytest", "tests/generated", "-q", "--tb=no", "-p", "no:cacheprovider"], root
        )
        print(f"pytest tests/generated: {tests.wall:.1f} s, exit {tests.rc}: {tests.out.strip().splitlines()[-1]}")
    fig["report"] = _measure("report", ["report"], root, runs)
    print(
        f"report {'with' if args.with_results else 'WITHOUT'} a results file: "
        f"{fig['report'].out.strip().splitlines()[-1]}"
    )
    ok = True
    for name, r in fig.items():
        within = r.wall < TARGETS[name]
        ok &= within
        print(
            f"{name:24s} wall {r.wall:7.3f} s  cpu {r.cpu:7.3f} s  peak RSS {r.rss_mb:6.0f} MB  "
            f"(target < {TARGETS[name]} s) {'ok' if within else 'MISSED'}"
        )
    peak = max(r.rss_mb for r in fig.values())
    ok &= peak < RSS_TARGET_MB
    print(f"{'peak RSS':24s} {peak:.0f} MB (target < {RSS_TARGET_MB} MB) {'ok' if peak < RSS_TARGET_MB else 'MISSED'}")
    html = None if args.quick else _chromium(root, min(runs, 3))
    if html:
        page, blank = html
        within = page < TARGETS["report.html in Chromium"]
        ok &= within
        size = (root / "build" / "specgen" / "report.html").stat().st_size / 1e6
        print(
            f"{'report.html in Chromium':24s} wall {page:7.3f} s  (about:blank {blank:.3f} s; "
            f"report.html {size:.1f} MB) (target < 2.0 s) {'ok' if within else 'MISSED'}"
        )
    print("targets:", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
