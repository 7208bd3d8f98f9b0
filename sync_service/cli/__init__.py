"""The `crm-sync` command line (SPEC §5)."""
