"""Error answers of the fake Graph server, shaped as Microsoft documents them.

- the error resource ``{"error": {"code", "message", "innerError": {…}}}`` — "Microsoft Graph error responses
  and resource types" (learn.microsoft.com/graph/errors);
- throttling: ``429`` with ``Retry-After`` and the sample body of "Microsoft Graph throttling guidance";
- ``serviceNotAvailable`` (503), ``resyncRequired`` (410) from the same error-code table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Fault:
    path_part: str
    status: int
    retry_after: str | None
    times: int


def graph_error(code: str, message: str) -> dict[str, Any]:
    inner = {"date": "2026-01-01T00:00:00", "request-id": "00000000-0000-0000-0000-000000000000",
             "client-request-id": "00000000-0000-0000-0000-000000000000"}  # fmt: skip
    return {"error": {"code": code, "message": message, "innerError": inner}}


def fault_response(fault: Fault) -> tuple[int, dict[str, str], Any]:
    headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
    if fault.status == 429:  # the sample response of "Microsoft Graph throttling guidance"
        return 429, headers, {"error": {"code": "TooManyRequests", "innerError": {
            "code": "429", "date": "2020-08-18T12:51:51", "message": "Please retry after",
            "request-id": "94fb3b52-452a-4535-a601-69e0a90e3aa2", "status": "429"},
            "message": "Please retry again later."}}  # fmt: skip
    if fault.status == 410:
        return 410, headers, graph_error("resyncRequired", "The delta token is no longer valid; reset the sync state.")
    return fault.status, headers, graph_error("serviceNotAvailable", "The service is temporarily unavailable.")
