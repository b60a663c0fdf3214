"""Rollouts for Stage-2 Channel-B: the ms-swift ``swift rollout`` server contract
(requests, request config, seeds, chunking, response validation, an HTTP client with
retries that cover network errors) and the learner/server prompt alignment check.

Submodules import nothing heavy; ``swift_contract`` is the only one that imports ms-swift.
"""
