"""Helpers shared by the check modules (tests/checks) and the unit tests (tests/coordexp, tests/specgen).

Nothing here is a test or a check; both sides import from here, never from each other.
"""
