"""The admin dashboard (`crm-sync dashboard`): mailbox health, queues, quarantine, review, metrics, alerts.

Server-rendered (FastAPI + Jinja2, no scripts), behind a login, with a CSRF token on every action. Importing
this package does nothing: ``sync_service.dashboard.app.create_app`` builds the web app from an ``App``.
"""
