"""Run artifacts: the manifest written before training starts, and the weight-only checkpoint policy.

Files (rank 0, into the run's output directory, before the first step):

* ``resolved_config.json``: the materialised config (null values dropped), its source paths and the
  dataset seed. A failure to write it is fatal.
* ``runtime_env.json``: a *whitelist* of environment variables (never the whole environment: it holds
  tokens and credentials). Empty values are skipped.
* ``run_metadata.json``: git sha/branch/dirty state, the dataset seed, upstream provenance
  (transformers, torch, vllm, swift versions or an explicit "not installed"; the ms-swift source
  checkout if it is one) and the rollout-server launcher flags that are set.
* ``config_source.yaml`` / ``base_config_source.yaml``: best-effort copies; a failure warns.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from coordexp.errors import CoordExpError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
RESOLVED_CONFIG = "resolved_config.json"
RUNTIME_ENV = "runtime_env.json"
RUN_METADATA = "run_metadata.json"
MANIFEST_FILES = (RESOLVED_CONFIG, RUNTIME_ENV, RUN_METADATA)

ENV_WHITELIST = (
    "ROOT_IMAGE_DIR",
    "CUDA_VISIBLE_DEVICES",
    "NCCL_DEBUG",
    "TOKENIZERS_PARALLELISM",
    "PYTHONHASHSEED",
    "OMP_NUM_THREADS",
    "HF_HOME",
    "TRANSFORMERS_CACHE",
    "TORCH_HOME",
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
    "CONDA_DEFAULT_ENV",
    "CONDA_PREFIX",
)
ENV_WHITELIST_PREFIXES = ("SLURM_",)

LAUNCHER_VARS = tuple(
    "COORDEXP_STAGE2_" + k
    for k in (
        "LAUNCHER",
        "SERVER_BASE_URL",
        "SERVER_MODEL",
        "SERVER_TORCH_DTYPE",
        "SERVER_DP",
        "SERVER_TP",
        "SERVER_ENFORCE_EAGER",
        "SERVER_GPU_MEMORY_UTILIZATION",
        "SERVER_MAX_MODEL_LEN",
        "SERVER_ENABLE_LORA",
        "SERVER_GPUS",
        "LEARNER_GPUS",
    )
)

# distribution name -> import name
UPSTREAM_PACKAGES = {"transformers": "transformers", "torch": "torch", "vllm": "vllm", "ms-swift": "swift"}
NOT_INSTALLED = "not installed"

# Files a weight-only checkpoint must not hold (a resume restarts the optimizer; openspec/specs/run-artifacts,
# Weight-only checkpoints).
FORBIDDEN_CHECKPOINT_GLOBS = (
    "optimizer.pt",
    "optimizer.bin",
    "scheduler.pt",
    "rng_state*.pth",
    "scaler.pt",
    "global_step*",
)


class ManifestError(CoordExpError, RuntimeError):
    """The run manifest could not be written: refuse to train without a record of what ran."""


def _plain(value: Any) -> Any:
    """JSON-ready copy: dataclasses to dicts, None dropped, paths and other objects as strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def runtime_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    env = os.environ if environ is None else environ
    keep = {k: v for k, v in env.items() if v != "" and (k in ENV_WHITELIST or k.startswith(ENV_WHITELIST_PREFIXES))}
    return dict(sorted(keep.items()))


def launcher_flags(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    env = os.environ if environ is None else environ
    return {k: env[k] for k in LAUNCHER_VARS if env.get(k, "") != ""}


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("git %s failed in %s: %s", " ".join(args), root, exc)
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_info(root: str | Path) -> dict[str, Any]:
    root = Path(root)
    sha = _git(root, "rev-parse", "HEAD")
    if sha is None:
        return {
            "git_sha": None,
            "git_branch": None,
            "git_dirty": None,
            "git_status_porcelain": [],
            "git_error": f"{root} is not a git checkout (or git is missing)",
        }
    status = _git(root, "status", "--porcelain") or ""
    lines = status.splitlines()
    return {
        "git_sha": sha,
        "git_branch": _git(root, "rev-parse", "--abbrev-ref", "HEAD"),
        "git_dirty": bool(lines),
        "git_status_porcelain": lines[:200],
    }


def _package(dist: str, module: str) -> dict[str, Any]:
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return {"error": NOT_INSTALLED}
    spec = importlib.util.find_spec(module)  # located, not imported: importing vllm/swift is heavy
    return {"version": version, "file": spec.origin if spec and spec.origin else None}


def ms_swift_source() -> dict[str, Any]:
    """Where ms-swift comes from: a git checkout (repo root, sha, branch, dirty) or an installed wheel."""
    spec = importlib.util.find_spec("swift")
    if spec is None or not spec.origin:
        return {"error": NOT_INSTALLED}
    pkg_dir = Path(spec.origin).parent
    top = _git(pkg_dir, "rev-parse", "--show-toplevel")
    # A venv inside some other git checkout is not an ms-swift checkout: the package must be tracked there.
    tracked = (
        top is not None and _git(Path(top), "ls-files", "--error-unmatch", str(pkg_dir / "__init__.py")) is not None
    )
    if not tracked:
        return {"install_dir": str(pkg_dir), "git_checkout": False}
    info = git_info(top)
    return {
        "install_dir": str(pkg_dir),
        "git_checkout": True,
        "repo_root": top,
        "sha": info["git_sha"],
        "branch": info["git_branch"],
        "dirty": info["git_dirty"],
    }


def upstream_provenance(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    env = os.environ if environ is None else environ
    out: dict[str, Any] = {
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "conda_env": env.get("CONDA_DEFAULT_ENV") or None,
    }
    for dist, module in UPSTREAM_PACKAGES.items():
        out["swift" if dist == "ms-swift" else dist] = _package(dist, module)
    out["ms_swift"] = ms_swift_source()
    return out


def _write_json(path: Path, doc: Any) -> None:
    path.write_text(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def write_run_manifest(
    output_dir: str | Path,
    *,
    config_path: str | Path,
    resolved: Any,
    dataset_seed: int,
    repo_root: str | Path,
    base_config_path: str | Path | None = None,
    run_name: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write the manifest; returns the files written. Raises ManifestError if a required file fails."""
    out = Path(output_dir)
    written: list[Path] = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        p = out / RESOLVED_CONFIG
        _write_json(
            p,
            {
                "schema_version": SCHEMA_VERSION,
                "config_path": str(config_path),
                "base_config_path": str(base_config_path) if base_config_path else None,
                "dataset_seed": dataset_seed,
                "resolved": _plain(resolved),
            },
        )
        written.append(p)
        p = out / RUNTIME_ENV
        _write_json(p, {"schema_version": SCHEMA_VERSION, "env": runtime_env(environ)})
        written.append(p)
    except OSError as exc:
        raise ManifestError(f"{out}: cannot write the run manifest ({exc}); fix the output_dir") from exc

    for src, name in ((config_path, "config_source.yaml"), (base_config_path, "base_config_source.yaml")):
        if not src:
            continue
        try:
            shutil.copyfile(src, out / name)
            written.append(out / name)
        except OSError as exc:  # best effort: warn, never silently
            log.warning("could not copy %s to %s: %s", src, out / name, exc)

    meta = {
        "schema_version": SCHEMA_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": str(config_path),
        "base_config": str(base_config_path) if base_config_path else None,
        "run_name": run_name,
        "output_dir": str(out),
        **git_info(repo_root),
        "dataset_seed": dataset_seed,
        "upstream": upstream_provenance(environ),
        "launcher": launcher_flags(environ),
    }
    p = out / RUN_METADATA
    meta["run_manifest_files"] = sorted(x.name for x in [*written, p])
    try:
        _write_json(p, meta)
    except OSError as exc:
        raise ManifestError(f"{p}: cannot write run metadata ({exc})") from exc
    written.append(p)
    return written


def checkpoint_problems(checkpoint_dir: str | Path) -> list[str]:
    """Why a checkpoint is not weight-only (empty list: it is)."""
    ckpt = Path(checkpoint_dir)
    problems = [
        f"{ckpt / m.name}: {m.name} must not be saved (weight-only checkpoints)"
        for pattern in FORBIDDEN_CHECKPOINT_GLOBS
        for m in sorted(ckpt.glob(pattern))
    ]
    if not any(ckpt.glob("*.safetensors")):
        problems.append(f"{ckpt}: no *.safetensors weights")
    return problems
