"""Benchmarks of crm-sync: a deterministic corpus generator and the ingest benchmark (docs/performance.md).

``python -m bench.corpus --messages 20000 --out DIR`` writes a CRM (SPEC §5 CSVs) and a Maildir;
``python -m bench.bench_ingest`` measures parse-only vs. full ingest on SQLite and PostgreSQL, re-sync and
peak memory in one run. Nothing here is imported by the product.
"""
