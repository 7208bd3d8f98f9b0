"""Contacts as people an admin looks after: show one, merge two that are one person (`crm-sync contact …`)."""
