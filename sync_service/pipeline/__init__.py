"""The sync pipeline: fetch (source → raw items + cursor) then process (raw items → activities)."""
