"""Stage-2 launcher: preflight pieces, then scripts/train_stage2.sh end to end with a fake learner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from coordexp.stage2 import launcher as L
from tests.helpers.ddp_harness import free_port
from tests.helpers.launcher_fixtures import (
    SCRIPT, STUBBORN_SERVER, ensure_assets, pid_alive, run_launcher, write_config,
)


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return ensure_assets(tmp_path_factory.mktemp("assets"))


def test_parse_server_url():
    assert L.parse_server_url("http://127.0.0.1:8000") == ("http", "127.0.0.1", 8000)
    for bad, msg in [("127.0.0.1:8000", "http"), ("http://127.0.0.1", "explicit port"), ("http://:80", "no host"),
                     ("ftp://h:1", "http")]:
        with pytest.raises(ValueError, match=msg):
            L.parse_server_url(bad)


def test_gpus_must_be_disjoint_and_divisible():
    assert L.check_gpus((0, 1), (2, 3), 1) == 2 and L.check_gpus((), (), 1) == 1
    with pytest.raises(ValueError, match=r"overlap on \[1\]"):
        L.check_gpus((0, 1), (1, 2), 1)
    with pytest.raises(ValueError, match="not divisible"):
        L.check_gpus((0, 1, 2), (3,), 2)
    with pytest.raises(ValueError, match="comma list"):
        L.parse_gpus("0;1", "X")


def _problems(cfg, env=None):
    with pytest.raises(L.PreflightError) as ei:
        L.run_preflight(str(cfg), env or {}, validate_jsonl=lambda f, m: [])
    return "\n".join(ei.value.problems)


def test_preflight_refusals(assets, tmp_path):
    model, data = assets
    train = str(data / "train.coord.jsonl")
    two = write_config(tmp_path, 1, model=str(model), train=train,
                       servers=["http://127.0.0.1:1", "http://127.0.0.1:2"])
    assert "exactly one" in _problems(two)
    noport = write_config(tmp_path, 1, model=str(model), train=train, servers=["http://127.0.0.1"])
    assert "explicit port" in _problems(noport)
    nomodel = write_config(tmp_path, 1, model=str(tmp_path / "nope"), train=train)
    assert "server model folder" in _problems(nomodel)
    hf = write_config(tmp_path, 1, model=str(model), train=train, backend="hf")
    assert "rollout_backend is 'hf'" in _problems(hf)
    short = write_config(tmp_path, 1, model=str(model), train=train, max_model_len=64)
    assert "global_max_length" in _problems(short)  # the config loader or the launcher refuses it
    ok = write_config(tmp_path, 1, model=str(model), train=train)
    assert "overlap" in _problems(ok, {"COORDEXP_STAGE2_SERVER_GPUS": "0,1", "COORDEXP_STAGE2_LEARNER_GPUS": "1"})


def test_preflight_paths_ignore_the_working_directory(assets, tmp_path, monkeypatch):
    import shutil

    model, data = assets
    repo = tmp_path / "repo"
    (repo / "configs" / "exp" / "d").mkdir(parents=True)
    shutil.copytree(data, repo / "configs" / "exp" / "d", dirs_exist_ok=True)  # ./d/... next to the config
    shutil.copytree(data, repo / "rootdata")  # rootdata/... under the repo root
    cfg = write_config(repo, 9, model=str(model), train="./d/train.coord.jsonl", val="rootdata/val.coord.jsonl")
    results = []
    for cwd in (tmp_path, repo / "configs"):
        monkeypatch.chdir(cwd)
        pf = L.run_preflight(os.path.relpath(cfg, cwd), {})
        results.append((pf.train_jsonl_resolved, pf.val_jsonl_resolved, pf.root_image_dir_resolved))
    assert results[0] == results[1] == (str(repo / "configs/exp/d/train.coord.jsonl"),
                                        str(repo / "rootdata/val.coord.jsonl"), str(repo / "configs/exp/d"))


def test_preflight_runs_the_jsonl_guards(assets, tmp_path):
    model, data = assets
    bad = tmp_path / "bad.jsonl"
    bad.write_text((data / "train.coord.jsonl").read_text().splitlines()[0].replace('"width": ', '"width": 1') + "\n")
    cfg = write_config(tmp_path, 1, model=str(model), train=str(bad))
    with pytest.raises(L.PreflightError) as ei:
        L.run_preflight(str(cfg), {})
    assert any("bad.jsonl:1" in p for p in ei.value.problems)


def test_swift_server_command_flags_exist():
    from tests.helpers.swift_oracle import rollout_cli_flags

    pf = L.Preflight(config="c", rollout_backend="vllm", vllm_mode="server", server_base_urls=("http://h:1",),
                     server_host="h", server_port=1, server_model="/m", train_jsonl_resolved="/t",
                     val_jsonl_resolved=None, template_max_pixels=1, root_image_dir_resolved="/",
                     vllm_max_model_len=12000, vllm_enable_lora=False, vllm_gpu_memory_utilization=0.75,
                     vllm_enforce_eager=True, server_torch_dtype="bfloat16", server_gpus=(0, 1), learner_gpus=(2,),
                     server_tp=1, server_dp=2)
    cmd = L.server_command(pf, "swift")
    flags = [a[2:] for a in cmd if a.startswith("--")]
    assert cmd[:2] == ["swift", "rollout"] and set(flags) <= rollout_cli_flags()
    assert cmd[cmd.index("--vllm_data_parallel_size") + 1] == "2"


@pytest.mark.parametrize("args,code", [([], 2), (["/no/such.yaml"], 2)])
def test_usage_errors(args, code):
    r = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=30)
    assert r.returncode == code and "usage: scripts/train_stage2.sh <config.yaml>" in r.stderr


def test_end_to_end_with_a_fake_learner(assets, tmp_path):
    model, data = assets
    port = free_port()
    cfg = write_config(tmp_path, port, model=str(model), train=str(data / "train.coord.jsonl"))
    r = run_launcher(cfg, tmp_path, cwd=tmp_path, FAKE_RC=7)
    assert r.returncode == 7, r.stderr
    seen = (tmp_path / "learner.out").read_text()
    assert f"COORDEXP_STAGE2_SERVER_BASE_URL=http://127.0.0.1:{port}" in seen
    assert f"ROOT_IMAGE_DIR={data}" in seen and 'world={"world_size": 1}' in seen
    assert f"COORDEXP_STAGE2_SERVER_MODEL={model}" in seen and f"config={cfg}" in seen
    assert "world_size 1" in r.stderr  # GET /get_world_size/ logged after readiness
    with pytest.raises(OSError):  # the server is gone
        import socket
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_a_server_ignoring_term_is_killed(assets, tmp_path):
    model, data = assets
    port = free_port()
    cfg = write_config(tmp_path, port, model=str(model), train=str(data / "train.coord.jsonl"))
    (tmp_path / "srv.py").write_text(STUBBORN_SERVER)
    t0 = time.monotonic()
    r = run_launcher(cfg, tmp_path, cwd=tmp_path,
                     COORDEXP_STAGE2_SERVER_CMD_OVERRIDE=f"{sys.executable} {tmp_path}/srv.py {port} {tmp_path}/pid")
    assert r.returncode == 0 and "ignored TERM for 3 s: KILL" in r.stderr
    assert not pid_alive(int((tmp_path / "pid").read_text())) and time.monotonic() - t0 < 60


def test_readiness_timeout_fails_and_cleans_up(assets, tmp_path):
    model, data = assets
    port = free_port()
    cfg = write_config(tmp_path, port, model=str(model), train=str(data / "train.coord.jsonl"))
    # A server command no other process on the machine runs (tests run in parallel): its own sleep length.
    server = f"sleep 300.{os.getpid()}"
    r = run_launcher(cfg, tmp_path, cwd=tmp_path, COORDEXP_STAGE2_READY_TIMEOUT_S=1,
                     COORDEXP_STAGE2_SERVER_CMD_OVERRIDE=server)
    assert r.returncode == 1 and "did not answer 200 within 1 s" in r.stderr
    assert not (tmp_path / "learner.out").exists()
    assert subprocess.run(["pgrep", "-f", f"^{server}$"], capture_output=True).returncode == 1


def test_term_stops_learner_and_server(assets, tmp_path):
    model, data = assets
    port = free_port()
    cfg = write_config(tmp_path, port, model=str(model), train=str(data / "train.coord.jsonl"))
    learner = tmp_path / "learner.sh"
    from tests.helpers.launcher_fixtures import FAKE_LEARNER

    learner.write_text(FAKE_LEARNER)
    learner.chmod(0o755)
    env = {**os.environ, "COORDEXP_STAGE2_SERVER_IMPL": "loopback", "COORDEXP_STAGE2_READY_INTERVAL_S": "0.3",
           "COORDEXP_STAGE2_LEARNER_CMD": str(learner), "FAKE_OUT": str(tmp_path / "learner.out"),
           "FAKE_SLEEP": "120", "PYTHON": sys.executable}
    p = subprocess.Popen(["bash", str(SCRIPT), str(cfg)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not (tmp_path / "learner.out").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (tmp_path / "learner.out").exists()
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 143 and "stopping rollout server" in err
    import socket
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
