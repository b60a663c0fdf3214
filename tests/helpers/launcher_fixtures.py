"""Configs, a fake learner and a stubborn fake server for launcher tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "stage2_ab" / "smoke" / "tiny_cpu.yaml"
SERVER_SMOKE = REPO / "configs" / "stage2_ab" / "smoke" / "tiny_cpu_server.yaml"
SCRIPT = REPO / "scripts" / "train_stage2.sh"


def ensure_assets(root: Path) -> tuple[Path, Path]:
    """(model dir, data dir) under root: the tiny model and a small synthetic dataset."""
    from coordexp.smoke.synthetic import make_dataset
    from coordexp.smoke.tiny import is_built, save_tiny

    model, data = root / "tiny", root / "data"
    if not is_built(model):
        save_tiny(model)
    if not (data / "train.coord.jsonl").is_file():
        make_dataset(data, n_train=4, n_val=2, seed=17)
    return model, data


def write_config(
    repo: Path,
    port: int,
    *,
    model: str,
    train: str,
    val: str | None = None,
    extra: str = "",
    servers: list[str] | None = None,
    backend: str = "vllm",
    max_model_len: int = 2048,
) -> Path:
    """A leaf config at repo/configs/exp/leaf.yaml extending the smoke profile."""
    cfg = repo / "configs" / "exp" / "leaf.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    urls = servers if servers is not None else [f"http://127.0.0.1:{port}"]
    lines = [f"extends: {SMOKE}", "model:", f"  model: {model}", "custom:", f"  train_jsonl: {train}"]
    if val:
        lines.append(f"  val_jsonl: {val}")
    lines += [
        "rollout_matching:",
        f"  rollout_backend: {backend}",
        "  vllm:",
        f"    max_model_len: {max_model_len}",
        "    server:",
        "      servers:",
    ] + [f"        - base_url: {u}" for u in urls]
    cfg.write_text("\n".join(lines) + "\n" + extra)
    return cfg


FAKE_LEARNER = r"""#!/usr/bin/env bash
# Records what the learner sees, asks the server for its world size, then exits with $FAKE_RC.
{ echo "config=${@: -1}"; env | grep -E '^(COORDEXP_STAGE2_|ROOT_IMAGE_DIR)' | sort
  echo "world=$(curl -s "$COORDEXP_STAGE2_SERVER_BASE_URL/get_world_size/")"; } > "$FAKE_OUT"
[ -n "${FAKE_SLEEP:-}" ] && sleep "$FAKE_SLEEP"
exit "${FAKE_RC:-0}"
"""

STUBBORN_SERVER = r"""
import http.server, signal, sys, os
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only KILL stops it
open(sys.argv[2], "w").write(str(os.getpid()))
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        body = b'{"world_size": 1}' if "world" in self.path else b'{"status": "ok"}'
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def run_launcher(
    config: Path, tmp: Path, *, cwd: Path, timeout: float = 120, **env_extra
) -> subprocess.CompletedProcess:
    learner = tmp / "learner.sh"
    learner.write_text(FAKE_LEARNER)
    learner.chmod(0o755)
    env = {
        **os.environ,
        "COORDEXP_STAGE2_SERVER_IMPL": "loopback",
        "COORDEXP_STAGE2_READY_INTERVAL_S": "0.3",
        "COORDEXP_STAGE2_LEARNER_CMD": str(learner),
        "FAKE_OUT": str(tmp / "learner.out"),
        "PYTHON": sys.executable,
        **{k: str(v) for k, v in env_extra.items()},
    }
    return subprocess.run(
        ["bash", str(SCRIPT), str(config)], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.is_file() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def parse_server_command(cmd: list[str]) -> dict[str, str]:
    """``--flag value`` pairs of a launcher server command (``coordexp.stage2.launcher.server_command``),
    so checks can compare what the server is started with against the learner's values."""
    start = 2 if cmd[:2] == ["swift", "rollout"] else 3
    rest = cmd[start:]
    if len(rest) % 2 or not all(a.startswith("--") for a in rest[::2]):
        raise ValueError(f"not a --flag value list: {rest}")
    return {k[2:]: v for k, v in zip(rest[::2], rest[1::2], strict=True)}
