"""The chaos suite's short profile: real worker processes, the real broker, every id counted.

Each test runs one scenario of :mod:`tests.chaos.scenarios` and asserts its figures. The
long profile: ``.venv/bin/python -m tests.chaos --profile long``. The property-based tests
(scenario 7) are ``tests/test_properties.py``.
"""

from __future__ import annotations

import pytest

from tests.chaos.harness import Broker, Figures
from tests.chaos.scenarios import SCENARIOS, SHORT, Unavailable
from tests.conftest import require

pytestmark = [pytest.mark.chaos, pytest.mark.broker, pytest.mark.slow]


async def run(name: str) -> Figures:
    """Run one scenario of the short profile; skip locally (fail in CI) if it cannot run."""
    require("RabbitMQ on 127.0.0.1:5672 with rabbitmqctl", Broker.available())
    try:
        fig = await SCENARIOS[name](SHORT)
    except Unavailable as exc:
        require(str(exc), False)
        raise
    print(f"{name}: {fig.details.get('summary')}")
    return fig


def assert_passed(fig: Figures) -> None:
    """Every named check of the scenario holds."""
    assert fig.passed, f"{fig.scenario}: {fig.failed_checks()} failed; {fig.as_dict()}"


def assert_nothing_lost(fig: Figures, *, dead: int = 0) -> None:
    """The four figures: nothing lost, duplicated or unexpected; ``dead`` dead letters."""
    assert (fig.lost, fig.duplicated, fig.unexpected, fig.dead_lettered) == (0, 0, 0, dead), \
        fig.as_dict()
    assert fig.sent > 0


async def test_kill9_two_workers_lose_nothing_and_never_duplicate_a_ticket() -> None:
    fig = await run("kill9")
    assert_nothing_lost(fig)
    assert fig.details["kills"] == SHORT.kills
    assert fig.store_rows == fig.sent and fig.details["store_rows_duplicated"] == 0
    assert_passed(fig)


async def test_broker_restart_the_worker_resumes_by_itself() -> None:
    fig = await run("broker_restart")
    assert_nothing_lost(fig)
    for restart in fig.details["restarts"]:
        assert restart["readyz_503_while_down"]
        assert restart["ready_after_s"] is not None and restart["routing_after_s"] is not None
    assert all(n == 1 for n in fig.details["consumers_after_restarts"].values())
    assert_passed(fig)


async def test_sigterm_under_load_rejects_nothing_and_exits_within_the_grace() -> None:
    fig = await run("sigterm")
    assert_nothing_lost(fig)
    assert fig.details["rejected_or_requeued"] == 0
    assert all(t is not None and t < SHORT.grace_seconds for t in fig.details["exit_seconds"])
    assert_passed(fig)


async def test_sqlite_store_locked_stops_routing_then_resumes() -> None:
    fig = await run("store_sqlite_lock")
    assert_nothing_lost(fig)
    assert fig.details["routing_after_s"] is not None
    assert_passed(fig)


@pytest.mark.postgres
async def test_postgres_store_down_stops_routing_then_resumes() -> None:
    fig = await run("store_postgres_down")
    assert_nothing_lost(fig)
    assert fig.details["tickets_during_outage"] <= 400 and fig.details["store_errors"] > 0
    assert fig.details["routing_after_s"] is not None
    assert_passed(fig)


async def test_poison_is_dead_lettered_with_its_reason_and_costs_little() -> None:
    fig = await run("poison")
    poisoned = fig.details["poison_sent"]
    assert poisoned > 0
    assert_nothing_lost(fig, dead=poisoned)
    assert sum(fig.details["dead_lettered_by_reason"].values()) == poisoned
    assert_passed(fig)


async def test_unroutable_tickets_are_dead_lettered_never_dropped() -> None:
    fig = await run("unroutable")
    assert fig.details["unroutable"] > 0
    assert_nothing_lost(fig, dead=fig.details["unroutable"])
    assert fig.details["replayed"] == fig.details["unroutable"]
    assert_passed(fig)


async def test_personal_data_stays_out_of_logs_metrics_and_dead_letters() -> None:
    fig = await run("pii")
    assert (fig.details["pii_in_logs"], fig.details["pii_in_metrics"],
            fig.details["pii_in_dead_letter_headers"]) == (0, 0, 0)
    assert fig.details["sender_strings_in_labels"] == 0
    assert fig.details["per_message_label_values"] == 0
    series = fig.details["metric_series"]
    assert series[-1] - series[0] < fig.details["distinct_senders"] // 50, "flat, not per sender"
    assert_passed(fig)


async def test_a_tampered_model_is_refused_and_the_old_one_keeps_serving() -> None:
    fig = await run("model_tamper")
    assert_nothing_lost(fig)
    assert fig.details["refused_reloads"] == len(fig.details["tamperings"])
    assert not fig.details["tampered_pickle_loaded"]
    assert_passed(fig)
