"""Worker tuning from the environment (``workers/options.py``)."""

from __future__ import annotations

import pytest

from sync_service.errors import ConfigError
from workers.options import worker_options


def test_defaults_differ_between_embedded_and_redis_mode() -> None:
    embedded, redis = worker_options(True, {}), worker_options(False, {})
    assert (embedded.max_retries, redis.max_retries) == (3, 10)
    assert (embedded.process_slice, redis.process_slice) == (None, 1.0)


def test_process_slice_is_read_in_redis_mode_only() -> None:
    assert worker_options(False, {"CRM_PROCESS_SLICE_SECONDS": "2.5"}).process_slice == 2.5
    assert worker_options(False, {"CRM_PROCESS_SLICE_SECONDS": " "}).process_slice == 1.0
    # sync --once processes everything in one run, whatever the variable says
    assert worker_options(True, {"CRM_PROCESS_SLICE_SECONDS": "2.5"}).process_slice is None


@pytest.mark.parametrize("value", ["soon", "-1"])
def test_a_bad_value_is_a_one_line_error(value: str) -> None:
    with pytest.raises(ConfigError, match="CRM_PROCESS_SLICE_SECONDS"):
        worker_options(False, {"CRM_PROCESS_SLICE_SECONDS": value})


def test_parsing_ahead_is_asked_for_by_crm_syncs_own_commands_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import workers.options as options
    from workers.options import parse_processes_for_command

    monkeypatch.setattr(options, "_cores", lambda: 4)
    # `crm-sync sync` / `demo`: one helper with a spare core; run_once from other code and Redis workers: none
    assert parse_processes_for_command({}) == 1
    assert (worker_options(True, {}).parse_processes, worker_options(False, {}).parse_processes) == (0, 0)
    monkeypatch.setattr(options, "_cores", lambda: 1)
    assert parse_processes_for_command({}) == 0
    # the variable decides everywhere
    assert parse_processes_for_command({"CRM_PARSE_PROCESSES": "2"}) == 2
    assert worker_options(True, {"CRM_PARSE_PROCESSES": "2"}).parse_processes == 2
    assert worker_options(False, {"CRM_PARSE_PROCESSES": "1"}).parse_processes == 1
    monkeypatch.setattr(options, "_cores", lambda: 4)
    assert parse_processes_for_command({"CRM_PARSE_PROCESSES": "0"}) == 0
    with pytest.raises(ConfigError, match="CRM_PARSE_PROCESSES"):
        parse_processes_for_command({"CRM_PARSE_PROCESSES": "many"})
