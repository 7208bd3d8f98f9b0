"""Bundled sample data for ``crm-sync demo``.

``data/`` holds a small CRM as CSV files; ``sample.py`` generates two reps' Maildirs with calendars, dated
relative to *now* so that everything falls inside the sync window.
"""
