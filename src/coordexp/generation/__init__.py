"""Generation: rollouts from a Qwen3-VL for inference (``coordexp.infer``) and for stage_2's Channel-B, in this
process or from a rollout server that speaks ms-swift 4.6.0's ``swift rollout`` HTTP protocol.

- ``request``: ``/infer/`` request bodies, ``RequestConfig`` and ``DecodeSettings``, rollout seeds;
- ``response``: ``/infer/`` response validation (``return_details`` with prompt and generated token ids);
- ``chunking``: how many requests each learner rank sends per call, from the servers' world size;
- ``client``: the HTTP client (health, world size, chunked ``/infer/`` with retries);
- ``backend``: the one interface callers use (``RolloutBackend``), and the server-backed one;
- ``hf_backend``: ``generate`` on a local model (the CPU default, and the loopback server's engine);
- ``server``: the loopback rollout server with ``swift rollout``'s routes (``python -m coordexp.generation.server``);
- ``weight_sync``, ``sync_client``, ``sync_group``: pushing the learner's weights to the server, on ms-swift's
  protocol (``VLLMClient`` on CUDA, a gloo group on CPU);
- ``swift_contract``: our payloads checked against ms-swift's own types.

At import time no module imports anything heavy; ``swift_contract``, ``sync_client`` and ``weight_sync`` import
ms-swift inside the functions that need it.
"""
