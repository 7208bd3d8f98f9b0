"""CSV and vCard importers (SPEC §5): accounts, contacts, leads, opportunities.

Each importer validates the whole file before it writes anything and raises ``ImportFileError`` (with the
physical line number) at the first problem; the caller owns the transaction and rolls it back, so nothing
of a bad file is imported. Re-importing the same file changes nothing (every record is upserted by its
identity and compared field by field).
"""

from __future__ import annotations

from sync_service.importers.accounts import import_accounts
from sync_service.importers.contacts import import_contacts
from sync_service.importers.leads import import_leads
from sync_service.importers.opportunities import import_opportunities
from sync_service.importers.report import ImportReport

__all__ = ["ImportReport", "import_accounts", "import_contacts", "import_leads", "import_opportunities"]
