"""Smoke helpers: the tiny random Qwen3-VL (``tiny``) and the synthetic dataset (``synthetic``).

Used by the CPU smoke profiles, the scripts under ``scripts/tools/`` and the tests; production code never imports
this package (``tests/coordexp/test_import_graph.py`` pins it).
"""
