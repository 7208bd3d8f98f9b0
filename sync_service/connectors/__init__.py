"""Sources of mail, calendar and contacts. One interface (``base.Connector``), one registry."""
