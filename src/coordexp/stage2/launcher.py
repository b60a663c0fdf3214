"""Stage-2 launcher preflight and readiness (CPU only; used by ``scripts/train_stage2.sh``).

    python -m coordexp.stage2.launcher preflight <config.yaml>   # shell `export` lines, or errors (exit 1/2)
    python -m coordexp.stage2.launcher wait <base_url> [--interval S] [--timeout S] [--pid PID]

Preflight (openspec/specs/rollout-server-contract, Launcher Preflight) runs before any GPU is allocated:
- the config loads (coordexp.config: paths resolved against the config file for ``./``
  paths, else the repo root, never the working directory);
- ``rollout_backend: vllm``, ``vllm.mode: server`` and EXACTLY one server entry (the learner
  would only ever talk to the first one of several);
- the server URL is http(s) with an explicit host and port;
- the server model folder exists;
- ``vllm.max_model_len`` is set, ``max_new_tokens < max_model_len`` and ``max_model_len >=
  global_max_length``; ``template.max_pixels`` and ``custom.train_jsonl`` are set;
- server and learner GPUs (``COORDEXP_STAGE2_SERVER_GPUS`` / ``COORDEXP_STAGE2_LEARNER_GPUS``,
  comma lists; empty on CPU) do not overlap, and the server GPU count divides by TP;
- the train/val JSONL pass ``scripts/tools/validate_jsonl.py`` (stage2, max_pixels, images);
- ``mm_processor_kwargs`` holds only ``do_resize`` (and a ``max_pixels`` equal to the learner's),
  and ``template.truncation_strategy`` has a server name (``SERVER_TRUNCATION``).

``wait`` then checks the server's ``/get_world_size/`` against DP x TP (``--expect-world-size``):
a mismatch aborts the launch before the learner starts.

Its output exports the ``COORDEXP_STAGE2_*`` variables (recorded in run_metadata.json by
``coordexp.training.artifacts``), ``ROOT_IMAGE_DIR`` (the directory of train_jsonl) and
``COORDEXP_STAGE2_SERVER_CMD``: ``swift rollout ...`` (vLLM, production) or the CPU loopback
server ``coordexp.generation.server``. Which one (``choose_server_impl``, logged on stderr):
``COORDEXP_STAGE2_SERVER_IMPL`` (swift | loopback) when set; otherwise loopback when the
config's model is the tiny model (its folder holds ``checkpoints.files.TINY_MARKER``) or vLLM is not importable here
(``swift rollout --infer_backend vllm`` could not start), else swift.

A tiny model or synthetic JSONL that the config places under the repo's ``build/`` and that is
missing is built before the preflight by ``python -m coordexp.smoke.inputs`` (``scripts/train_stage2.sh``
runs it), so the CPU smoke runs from a fresh clone. The server port must be free (a stale server there would answer the
readiness probe in place of the new one).
The server command is built from ms-swift's ``RolloutArguments`` field names (``server_args``):
the learner's ``template.template``, ``template.max_pixels`` and ``global_max_length``, the vLLM
engine options of ``rollout_matching.vllm`` (tensor parallel size, max_model_len, memory
utilization, eager, LoRA, prefix caching) and its ``mm_processor_kwargs`` as vLLM engine kwargs.
``mm_processor_kwargs.do_resize`` must be stated and equal the learner's image processor's
(``processor_parity_problems``); the loopback server gets the same template, max_pixels and
do_resize. Server knobs that are not training knobs come from the environment:
``COORDEXP_STAGE2_SERVER_TP`` (default ``rollout_matching.vllm.tensor_parallel_size``),
``..._SERVER_TORCH_DTYPE`` (default model.torch_dtype or bfloat16), ``..._SERVER_ENFORCE_EAGER``
(default vllm.enforce_eager).
"""

from __future__ import annotations

import argparse
import functools
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from coordexp.errors import CoordExpError

REPO_ROOT = Path(__file__).resolve().parents[3]
VALIDATE_JSONL = REPO_ROOT / "scripts" / "tools" / "validate_jsonl.py"


class PreflightError(CoordExpError, ValueError):
    """Every problem found, one per line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Preflight:
    config: str
    rollout_backend: str
    vllm_mode: str
    server_base_urls: tuple[str, ...]
    server_host: str
    server_port: int
    server_model: str
    train_jsonl_resolved: str
    val_jsonl_resolved: str | None
    template_max_pixels: int
    root_image_dir_resolved: str
    vllm_max_model_len: int
    vllm_enable_lora: bool
    vllm_gpu_memory_utilization: float
    vllm_enforce_eager: bool
    server_torch_dtype: str
    server_gpus: tuple[int, ...]
    learner_gpus: tuple[int, ...]
    server_tp: int
    server_dp: int
    # learner/server parity: what the learner uses, passed to the server under RolloutArguments names
    template: str = "qwen3_vl"
    max_length: int | None = None
    vllm_enable_prefix_caching: bool = True
    mm_processor_kwargs_json: str = '{"do_resize": false}'  # JSON of what the server's image processor is sent
    truncation_strategy: str = "delete"  # ms-swift's name for the learner's template.truncation_strategy


def parse_server_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s)://host:port URL; ValueError says what is missing."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"server base_url {url!r} must start with http:// or https://")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"server base_url {url!r} has an invalid port") from None
    if not parts.hostname:
        raise ValueError(f"server base_url {url!r} has no host")
    if port is None:
        raise ValueError(f"server base_url {url!r} has no explicit port (write http://host:PORT)")
    return parts.scheme, parts.hostname, port


def parse_gpus(value: str, what: str) -> tuple[int, ...]:
    value = (value or "").strip()
    if not value:
        return ()
    try:
        gpus = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise ValueError(f"{what}={value!r}: expected a comma list of GPU indices such as 0,1") from None
    if len(set(gpus)) != len(gpus) or any(g < 0 for g in gpus):
        raise ValueError(f"{what}={value!r}: GPU indices must be distinct and >= 0")
    return gpus


def check_gpus(server: tuple[int, ...], learner: tuple[int, ...], tp: int) -> int:
    """The server's DP; raises when the GPU sets overlap or TP does not divide the server GPUs."""
    overlap = sorted(set(server) & set(learner))
    if overlap:
        raise ValueError(
            f"server GPUs {list(server)} and learner GPUs {list(learner)} overlap on {overlap}: "
            "vLLM and training would fight for the same memory; give them disjoint GPUs"
        )
    if not server:
        return 1
    if len(server) % tp:
        raise ValueError(f"{len(server)} server GPUs are not divisible by COORDEXP_STAGE2_SERVER_TP={tp}")
    return len(server) // tp


def _as_bool(v: str, what: str) -> bool:
    if v.lower() in ("1", "true", "yes"):
        return True
    if v.lower() in ("0", "false", "no"):
        return False
    raise ValueError(f"{what}={v!r}: expected true or false")


def port_in_use(host: str, port: int) -> bool:
    import socket

    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


def choose_server_impl(
    pf: Preflight, env: Mapping[str, str], vllm_importable: Callable[[], bool] | None = None
) -> tuple[str, str]:
    """(impl, why): which rollout server the launcher starts, and the reason it logs."""
    forced = env.get("COORDEXP_STAGE2_SERVER_IMPL")
    if forced:
        return forced, f"COORDEXP_STAGE2_SERVER_IMPL={forced}"
    from coordexp.checkpoints.files import TINY_MARKER

    if (Path(pf.server_model) / TINY_MARKER).is_file():
        return "loopback", f"model {pf.server_model} is the tiny model"
    if vllm_importable is None:
        import importlib.util

        vllm_importable = lambda: importlib.util.find_spec("vllm") is not None  # noqa: E731
    if not vllm_importable():
        return "loopback", "vllm is not importable here, so `swift rollout --infer_backend vllm` cannot run"
    return "swift", "production default"


def _load(config_path: str):
    """The config (a smoke profile's inputs are built before the preflight: ``python -m coordexp.smoke.inputs``)."""
    from coordexp.config import ConfigError, load_config

    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        raise PreflightError([f"{config_path}: {line}" for line in str(exc).splitlines()] or [str(exc)]) from None
    if cfg.rollout_matching is None:
        raise PreflightError([f"{config_path}: rollout_matching: required for the Stage-2 launcher"])
    return cfg


def _mode_problems(config_path: str, rm) -> list[str]:
    """Server mode: the vllm backend in server mode."""
    out = []
    if rm.rollout_backend != "vllm":
        out.append(
            f"{config_path}: rollout_matching.rollout_backend is {rm.rollout_backend!r}; the launcher "
            "starts a rollout server, which needs 'vllm' (for local HF rollouts run scripts/train.sh)"
        )
    if rm.vllm.mode != "server":
        out.append(f"{config_path}: rollout_matching.vllm.mode is {rm.vllm.mode!r}; the launcher needs 'server'")
    return out


def _server_address(config_path: str, servers) -> tuple[str, int, list[str]]:
    """(host, port, problems): exactly one server, an explicit http(s)://host:port, a free port."""
    out: list[str] = []
    host, port = "", 0
    if len(servers) != 1:
        out.append(
            f"{config_path}: rollout_matching.vllm.server.servers has {len(servers)} entries; exactly one "
            "is supported (the learner would use only the first)"
        )
    if servers:
        key = "rollout_matching.vllm.server.servers[0].base_url"
        try:
            _, host, port = parse_server_url(servers[0].base_url)
        except ValueError as exc:
            out.append(f"{config_path}: {key}: {exc}")
        else:
            if port_in_use(host, port):
                out.append(
                    f"{config_path}: {key}: {host}:{port} is already in use (a stale rollout server?); "
                    "stop it or pick another port"
                )
    return host, port, out


def _model_problems(config_path: str, model_dir: str) -> list[str]:
    if not model_dir or not Path(model_dir).is_dir():
        return [f"{config_path}: model.model: server model folder {model_dir!r} does not exist"]
    return []


def _length_problems(config_path: str, rm, global_max_length) -> list[str]:
    """max_new_tokens < vllm.max_model_len >= global_max_length."""
    mml = rm.vllm.max_model_len
    if mml is None:
        return [f"{config_path}: rollout_matching.vllm.max_model_len: required by the launcher"]
    out = []
    if not rm.max_new_tokens < mml:
        out.append(
            f"{config_path}: rollout_matching.max_new_tokens {rm.max_new_tokens} must be < "
            f"rollout_matching.vllm.max_model_len {mml}"
        )
    if global_max_length is not None and mml < global_max_length:
        out.append(
            f"{config_path}: rollout_matching.vllm.max_model_len {mml} must be >= global_max_length {global_max_length}"
        )
    return out


def _max_pixels(config_path: str, cfg) -> tuple[int, list[str]]:
    max_pixels = cfg.template.get("max_pixels")
    if not isinstance(max_pixels, int) or isinstance(max_pixels, bool) or max_pixels <= 0:
        return 0, [f"{config_path}: template.max_pixels: required (a positive int)"]
    return max_pixels, []


@dataclass(frozen=True)
class _ServerGpus:
    tp: int = 1
    dp: int = 1
    server: tuple[int, ...] = ()
    learner: tuple[int, ...] = ()
    eager: bool = True


def _server_gpus(env: Mapping[str, str], rm) -> tuple[_ServerGpus, list[str]]:
    """TP, DP and the GPU sets from the environment (COORDEXP_STAGE2_SERVER_* / _LEARNER_GPUS)."""
    tp = dp = 1
    server_gpus = learner_gpus = ()
    try:
        tp = int(env.get("COORDEXP_STAGE2_SERVER_TP") or rm.vllm.tensor_parallel_size)
        if tp < 1:
            raise ValueError("COORDEXP_STAGE2_SERVER_TP must be >= 1")
        server_gpus = parse_gpus(env.get("COORDEXP_STAGE2_SERVER_GPUS", ""), "COORDEXP_STAGE2_SERVER_GPUS")
        learner_gpus = parse_gpus(env.get("COORDEXP_STAGE2_LEARNER_GPUS", ""), "COORDEXP_STAGE2_LEARNER_GPUS")
        dp = check_gpus(server_gpus, learner_gpus, tp)
        eager = (
            _as_bool(env["COORDEXP_STAGE2_SERVER_ENFORCE_EAGER"], "COORDEXP_STAGE2_SERVER_ENFORCE_EAGER")
            if env.get("COORDEXP_STAGE2_SERVER_ENFORCE_EAGER")
            else rm.vllm.enforce_eager
        )
    except ValueError as exc:
        return _ServerGpus(tp, dp, server_gpus, learner_gpus, rm.vllm.enforce_eager), [str(exc)]
    return _ServerGpus(tp, dp, server_gpus, learner_gpus, eager), []


def run_preflight(
    config_path: str, env: Mapping[str, str], *, validate_jsonl: Callable[[list[str], int], list[str]] | None = None
) -> Preflight:
    """All CPU-side launch checks, as named steps; raises PreflightError listing every problem
    (the JSONL guards run only once the config's own problems are fixed)."""
    cfg = _load(config_path)
    rm = cfg.rollout_matching
    problems = _mode_problems(config_path, rm)
    host, port, found = _server_address(config_path, rm.vllm.server.servers)
    problems += found
    model_dir = str(cfg.model.get("model") or "")
    problems += _model_problems(config_path, model_dir)
    problems += _length_problems(config_path, rm, cfg.global_max_length)
    max_pixels, found = _max_pixels(config_path, cfg)
    problems += found
    mm_kwargs = dict(rm.vllm.mm_processor_kwargs)
    problems += processor_parity_problems(config_path, mm_kwargs, max_pixels)
    truncation, found = server_truncation(config_path, cfg.template.get("truncation_strategy", "raise"))
    problems += found
    train = cfg.custom.train_jsonl
    if not train:
        problems.append(f"{config_path}: custom.train_jsonl: required")
    gpus, found = _server_gpus(env, rm)
    problems += found
    if problems:
        raise PreflightError(problems)
    files = [train] + ([cfg.custom.val_jsonl] if cfg.custom.val_jsonl else [])
    jsonl_problems = (
        validate_jsonl or functools.partial(_validate_jsonl, allow_outside=cfg.custom.allow_images_outside_jsonl_dir)
    )(files, max_pixels)
    if jsonl_problems:
        raise PreflightError(jsonl_problems)
    dtype = env.get("COORDEXP_STAGE2_SERVER_TORCH_DTYPE") or cfg.model.get("torch_dtype") or "bfloat16"
    return Preflight(
        config=str(Path(config_path).resolve()),
        rollout_backend=rm.rollout_backend,
        vllm_mode=rm.vllm.mode,
        server_base_urls=tuple(s.base_url for s in rm.vllm.server.servers),
        server_host=host,
        server_port=port,
        server_model=model_dir,
        train_jsonl_resolved=train,
        val_jsonl_resolved=cfg.custom.val_jsonl or None,
        template_max_pixels=max_pixels,
        root_image_dir_resolved=str(Path(train).parent),
        vllm_max_model_len=rm.vllm.max_model_len,
        vllm_enable_lora=rm.vllm.enable_lora,
        vllm_gpu_memory_utilization=rm.vllm.gpu_memory_utilization,
        vllm_enforce_eager=gpus.eager,
        server_torch_dtype=str(dtype),
        server_gpus=gpus.server,
        learner_gpus=gpus.learner,
        server_tp=gpus.tp,
        server_dp=gpus.dp,
        template=str(cfg.template.get("template") or "qwen3_vl"),
        max_length=cfg.global_max_length,
        vllm_enable_prefix_caching=rm.vllm.enable_prefix_caching,
        mm_processor_kwargs_json=json.dumps(
            {k: mm_kwargs[k] for k in SENT_MM_KWARGS if k in mm_kwargs}, sort_keys=True
        ),
        truncation_strategy=truncation,
    )


def _validate_jsonl(files: list[str], max_pixels: int, allow_outside: bool = False) -> list[str]:
    outside = ["--allow-images-outside-jsonl-dir"] if allow_outside else []
    r = subprocess.run(
        [sys.executable, str(VALIDATE_JSONL), *files, "--max-pixels", str(max_pixels), "--stage", "stage2", *outside],
        capture_output=True,
        text=True,
    )
    if r.returncode == 0:
        return []
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]
    return lines or [f"validate_jsonl exited {r.returncode} for {files}"]


def learner_do_resize() -> bool:
    """Whether the learner's image processor resizes (``coordexp.format.template.load_image_processor``)."""
    from coordexp.format.template import load_image_processor

    return bool(load_image_processor().do_resize)


# What the server's image processor is sent (vLLM's mm_processor_kwargs): do_resize only. max_pixels
# travels as ``--max_pixels`` (ms-swift's template, the learner's value); anything else would make
# the server see images differently from the learner, so it is refused, never passed on.
SENT_MM_KWARGS = ("do_resize",)
CHECKED_MM_KWARGS = ("do_resize", "max_pixels")

# The learner's template.truncation_strategy as ms-swift's rollout server names it. "raise" (an
# over-long sample is an error; the config refuses every other strategy, config.rules.check_template)
# is ms-swift's "delete" (the template raises MaxLengthError, which the server answers as an error
# instead of generating from a cut prompt).
SERVER_TRUNCATION = {"raise": "delete"}


def server_truncation(config_path: str, learner: str) -> tuple[str, list[str]]:
    """(``--truncation_strategy`` value, problems) for the learner's template.truncation_strategy."""
    if learner in SERVER_TRUNCATION:
        return SERVER_TRUNCATION[learner], []
    return "delete", [
        f"{config_path}: template.truncation_strategy {learner!r}: the rollout server takes "
        f"{', '.join(sorted(SERVER_TRUNCATION))}; set one of them"
    ]


def processor_parity_problems(config_path: str, mm_kwargs: dict, max_pixels: int) -> list[str]:
    """The server's image processor must see images as the learner does (rollout-server-contract, Learner And Server
    Prompt Alignment): the same do_resize (stated explicitly), when given the same max_pixels, and no other key."""
    key = "rollout_matching.vllm.mm_processor_kwargs"
    want = learner_do_resize()
    out = [
        f"{config_path}: {key}.{k}: not passed to the rollout server (only {', '.join(CHECKED_MM_KWARGS)} are "
        "checked against the learner's image processor, and only do_resize is sent): remove it"
        for k in sorted(set(mm_kwargs) - set(CHECKED_MM_KWARGS))
    ]
    if "do_resize" not in mm_kwargs:
        out.append(
            f"{config_path}: {key}.do_resize: required ({str(want).lower()}, as the learner's image processor): "
            "a resizing server changes the <|image_pad|> count and the prompts diverge"
        )
    elif mm_kwargs["do_resize"] is not want:
        out.append(
            f"{config_path}: {key}.do_resize is {mm_kwargs['do_resize']!r} but the learner's image processor "
            f"has do_resize={want}: set it {str(want).lower()}"
        )
    if "max_pixels" in mm_kwargs and mm_kwargs["max_pixels"] != max_pixels:
        out.append(
            f"{config_path}: {key}.max_pixels {mm_kwargs['max_pixels']!r} != template.max_pixels {max_pixels}: "
            "delete it (the launcher passes template.max_pixels)"
        )
    return out


def server_args(pf: Preflight, impl: str) -> list[tuple[str, object]]:
    """(RolloutArguments field name, value) pairs of the server command, learner values where they meet."""
    common = [
        ("model", pf.server_model),
        ("host", pf.server_host),
        ("port", pf.server_port),
        ("template", pf.template),
        ("max_pixels", pf.template_max_pixels),
    ]
    mm_kwargs = json.loads(pf.mm_processor_kwargs_json)  # inventory: json-ok(our own json.dumps of a config dict)
    if impl == "loopback":
        return common + [("do_resize", mm_kwargs.get("do_resize"))]
    if impl != "swift":
        raise ValueError(f"COORDEXP_STAGE2_SERVER_IMPL={impl!r}: use swift (vLLM) or loopback (CPU)")
    return common + [
        ("max_length", pf.max_length),
        ("infer_backend", "vllm"),
        ("torch_dtype", pf.server_torch_dtype),
        ("vllm_data_parallel_size", pf.server_dp),
        ("vllm_tensor_parallel_size", pf.server_tp),
        ("vllm_enforce_eager", pf.vllm_enforce_eager),
        ("vllm_gpu_memory_utilization", pf.vllm_gpu_memory_utilization),
        ("vllm_max_model_len", pf.vllm_max_model_len),
        ("vllm_enable_lora", pf.vllm_enable_lora),
        ("vllm_enable_prefix_caching", pf.vllm_enable_prefix_caching),
        ("truncation_strategy", pf.truncation_strategy),
        # vLLM's engine argument mm_processor_kwargs carries do_resize to the server's image processor
        ("vllm_engine_kwargs", json.dumps({"mm_processor_kwargs": mm_kwargs}, sort_keys=True)),
    ]


def _arg(v) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def server_command(pf: Preflight, impl: str, python: str = sys.executable) -> list[str]:
    head = [python, "-m", "coordexp.generation.server"] if impl == "loopback" else ["swift", "rollout"]
    args = [(k, v) for k, v in server_args(pf, impl) if v is not None]
    return head + [x for k, v in args for x in (f"--{k}", _arg(v))]


def launch_env(pf: Preflight, impl: str, python: str = sys.executable, token: str | None = None) -> dict[str, str]:
    """The variables the script exports (launcher metadata, ROOT_IMAGE_DIR, the server command, a fresh
    weight-sync token unless ``token`` is given)."""
    from coordexp.generation.auth import TOKEN_ENV, new_token

    gpus = lambda g: ",".join(str(i) for i in g)  # noqa: E731
    return {
        "COORDEXP_STAGE2_LAUNCHER": "scripts/train_stage2.sh",
        "COORDEXP_STAGE2_SERVER_BASE_URL": pf.server_base_urls[0],
        "COORDEXP_STAGE2_SERVER_MODEL": pf.server_model,
        "COORDEXP_STAGE2_SERVER_TORCH_DTYPE": pf.server_torch_dtype,
        "COORDEXP_STAGE2_SERVER_DP": str(pf.server_dp),
        "COORDEXP_STAGE2_SERVER_TP": str(pf.server_tp),
        "COORDEXP_STAGE2_SERVER_ENFORCE_EAGER": "true" if pf.vllm_enforce_eager else "false",
        "COORDEXP_STAGE2_SERVER_GPU_MEMORY_UTILIZATION": str(pf.vllm_gpu_memory_utilization),
        "COORDEXP_STAGE2_SERVER_MAX_MODEL_LEN": str(pf.vllm_max_model_len),
        "COORDEXP_STAGE2_SERVER_ENABLE_LORA": "true" if pf.vllm_enable_lora else "false",
        "COORDEXP_STAGE2_SERVER_GPUS": gpus(pf.server_gpus),
        "COORDEXP_STAGE2_LEARNER_GPUS": gpus(pf.learner_gpus),
        "COORDEXP_STAGE2_SERVER_IMPL": impl,
        "COORDEXP_STAGE2_SERVER_CMD": shlex.join(server_command(pf, impl, python)),
        "ROOT_IMAGE_DIR": pf.root_image_dir_resolved,
        # the run's weight-sync token, for the server and the learner alone (generation/auth.py)
        TOKEN_ENV: token or new_token(),
    }


def wait_ready(
    base_url: str,
    *,
    interval_s: float = 2.0,
    timeout_s: float = 900.0,
    alive: Callable[[], bool] = lambda: True,
    log: Callable[[str], None] = print,
    expected_world_size: int | None = None,
) -> int:
    """Poll GET /health/ until HTTP 200, then GET /get_world_size/; returns the world size.

    Raises TimeoutError after timeout_s, RuntimeError as soon as the server process is gone or
    when its world size is not ``expected_world_size`` (the DP x TP the launcher started it
    with: a server with other ranks would take a weight-sync group of another size and chunk
    the learner's requests for ranks it does not have).
    """
    from coordexp.generation.client import RolloutClient

    client = RolloutClient(base_url, timeout_s=max(1.0, min(interval_s, 10.0)))
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if client.health():
                ws = client.world_size()
                log(f"rollout server ready at {base_url}: world_size {ws}")
                if expected_world_size is not None and ws != expected_world_size:
                    raise RuntimeError(
                        f"{base_url}/get_world_size/ reports world_size {ws}, but the server was started with "
                        f"data parallel x tensor parallel = {expected_world_size} (COORDEXP_STAGE2_SERVER_DP x "
                        "COORDEXP_STAGE2_SERVER_TP): fix the server GPUs or COORDEXP_STAGE2_SERVER_TP"
                    )
                return ws
            if not alive():
                raise RuntimeError(f"the rollout server process exited before {base_url}/health/ answered")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{base_url}/health/ did not answer 200 within {timeout_s:g} s")
            time.sleep(interval_s)
    finally:
        client.close()


def _pid_alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # an exited child that the shell has not reaped yet is a zombie: gone for our purpose
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def main(argv=None) -> int:
    import os

    ap = argparse.ArgumentParser(prog="python -m coordexp.stage2.launcher")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("preflight", help="check a Stage-2 config and print the launch environment")
    p.add_argument("config")
    w = sub.add_parser("wait", help="wait for the rollout server's /health/")
    w.add_argument("base_url")
    w.add_argument("--interval", type=float, default=2.0)
    w.add_argument("--timeout", type=float, default=900.0)
    w.add_argument("--pid", type=int, default=None, help="server pid: stop waiting when it exits")
    w.add_argument(
        "--expect-world-size", type=int, default=None, help="abort unless the server reports this world size (DP x TP)"
    )
    args = ap.parse_args(argv)
    if args.cmd == "preflight":
        if not Path(args.config).is_file():
            print(f"error: {args.config}: config file not found", file=sys.stderr)
            return 2
        try:
            pf = run_preflight(args.config, os.environ)
            impl, why = choose_server_impl(pf, os.environ)
            print(f"preflight: rollout server: {impl} ({why})", file=sys.stderr)
            env = launch_env(pf, impl)
        except PreflightError as exc:
            for line in exc.problems:
                print(f"preflight: {line}", file=sys.stderr)
            return 1
        except ValueError as exc:
            print(f"preflight: {exc}", file=sys.stderr)
            return 1
        for k, v in env.items():
            print(f"export {k}={shlex.quote(v)}")
        return 0
    alive = (lambda: _pid_alive(args.pid)) if args.pid else (lambda: True)
    try:
        wait_ready(
            args.base_url,
            interval_s=args.interval,
            timeout_s=args.timeout,
            alive=alive,
            log=lambda m: print(m, file=sys.stderr, flush=True),
            expected_world_size=args.expect_world_size,
        )
    except (TimeoutError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
