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


def test_fetching_ahead_is_on_with_a_spare_core_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    import workers.options as options
    from workers.options import fetch_process_for_command

    monkeypatch.setattr(options, "_cores", lambda: 2)
    assert fetch_process_for_command({}) is True
    assert fetch_process_for_command({"CRM_FETCH_PROCESS": "0"}) is False
    monkeypatch.setattr(options, "_cores", lambda: 1)
    assert fetch_process_for_command({}) is False
    assert fetch_process_for_command({"CRM_FETCH_PROCESS": "1"}) is True
    for bad in ("2", "yes"):
        with pytest.raises(ConfigError, match="CRM_FETCH_PROCESS"):
            fetch_process_for_command({"CRM_FETCH_PROCESS": bad})


def test_the_idle_poll_is_prepared_for_dramatiq_unless_set_already() -> None:
    from workers.options import idle_poll_ms, prepare_dramatiq_environment

    env: dict[str, str] = {}
    prepare_dramatiq_environment(env)
    assert env == {"dramatiq_worker_timeout": "100"}  # dramatiq's own default is 1000
    env = {"CRM_WORKER_IDLE_POLL_MS": "250"}
    prepare_dramatiq_environment(env)
    assert env["dramatiq_worker_timeout"] == "250"
    env = {"CRM_WORKER_IDLE_POLL_MS": "250", "dramatiq_worker_timeout": "40"}  # dramatiq's own variable wins
    prepare_dramatiq_environment(env)
    assert env["dramatiq_worker_timeout"] == "40"
    for bad in ("5", "soon"):
        with pytest.raises(ConfigError, match="CRM_WORKER_IDLE_POLL_MS"):
            idle_poll_ms({"CRM_WORKER_IDLE_POLL_MS": bad})
