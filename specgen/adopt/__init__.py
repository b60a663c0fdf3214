"""Adoption by an existing project: ``init`` (the files specgen needs), ``baseline`` (today's gaps,
tolerated until fixed) and ``evidence`` (manual evidence records written for the user)."""
