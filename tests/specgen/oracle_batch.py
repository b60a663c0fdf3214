"""Many oracle calls in one Node process (see oracle_batch.mjs): `openspec show --json` and
`openspec list --json` through the installed CLI's own command classes.

`tests/specgen/test_parity_oracle.py` checks that this driver prints what the `openspec`
binary prints, on a sample; the parity tests then use it for whole corpora.
"""

from __future__ import annotations

import functools
import json
import subprocess
import tempfile
from pathlib import Path

from tests.specgen.oracle import ENV, REPO, require_oracle

DIST = REPO / "tools" / "openspec" / "node_modules" / "@fission-ai" / "openspec" / "dist"
DRIVER = Path(__file__).with_name("oracle_batch.mjs")


def run_batch(jobs: list[dict], timeout: float = 600) -> list[dict]:
    """[{stdout, stderr, exitCode}] for each job, in order."""
    require_oracle()
    if not jobs:
        return []
    with tempfile.TemporaryDirectory(prefix="oracle-batch-") as tmp:
        jobs_file = Path(tmp) / "jobs.json"
        out_file = Path(tmp) / "out.json"
        jobs_file.write_text(json.dumps(jobs), encoding="utf-8")
        proc = subprocess.run(["node", str(DRIVER), str(DIST), str(jobs_file), str(out_file)],
                              env=ENV, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0 or not out_file.exists():
            raise AssertionError(f"oracle batch failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        results = json.loads(out_file.read_text(encoding="utf-8"))
    for job, res in zip(jobs, results):
        if res["exitCode"] == 99:
            raise AssertionError(f"oracle batch job {job} crashed:\n{res['stderr']}")
    return results


@functools.cache
def _cached(jobs_json: str) -> tuple:
    return tuple(run_batch(json.loads(jobs_json)))


def run_batch_cached(jobs: list[dict]) -> list[dict]:
    return list(_cached(json.dumps(jobs, sort_keys=True)))
