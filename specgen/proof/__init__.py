"""Proof: evidence that each check runs the product's shipped code (reach) and could fail (strength).

``specgen proof`` (:mod:`specgen.proof.run`) measures with coverage.py and mutates with Cosmic Ray; both
are imported only by that command. ``specgen report`` reads the stamped ``proof.json`` it leaves
(:mod:`specgen.proof.attach`). See docs/proof.md.
"""
