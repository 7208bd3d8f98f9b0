"""Matching: which CRM records an email or meeting belongs to (SPEC §3).

Pure decisions over plain data. The only module here that touches the database is ``load.py``, which builds
the ``CandidateIndex``.
"""
