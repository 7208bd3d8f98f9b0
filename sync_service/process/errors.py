"""Errors of the process engine: one line each, shown by the CLI with exit code 1."""

from __future__ import annotations

from sync_service.errors import CrmSyncError


class ProcessError(CrmSyncError):
    """A process action that cannot be done (unknown stage, result not allowed, process not running…)."""


class DefinitionError(ProcessError):
    """A process definition (shipped YAML or an admin's edit) is malformed."""
