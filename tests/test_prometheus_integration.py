"""A real Prometheus scrapes the running service: one ticket meets its SLA, one breaches.

The figures are read back through Prometheus's query API, including the shipped recording
rule for SLA compliance and the breach alert.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import require
from tests.test_lifecycle import drain, inbound, send, serving
from triage.events import event_body

pytestmark = pytest.mark.broker
ROOT = Path(__file__).resolve().parent.parent
FAST_SLA = {c: {"sla_seconds": 3.0} for c in ("urgent", "crime_report", "complaint", "enquiry")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _query(session: aiohttp.ClientSession, base: str, expr: str) -> list[dict[str, Any]]:
    async with session.get(f"{base}/api/v1/query", params={"query": expr}) as response:
        body = await response.json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


async def _until(session: aiohttp.ClientSession, base: str, expr: str, want: float,
                 timeout: float = 90.0) -> float:
    deadline = time.monotonic() + timeout
    value = float("nan")
    while time.monotonic() < deadline:
        result = await _query(session, base, expr)
        if result:
            value = float(result[0]["value"][1])
            if value == want:
                return value
        await asyncio.sleep(0.5)
    return value


async def test_prometheus_sees_one_sla_met_and_one_breached(
        amqp_url: str, settings_factory: Any, tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    require("the prometheus server binary (Debian package prometheus)", binary is not None)
    assert binary is not None
    settings = settings_factory(amqp_url, routes=FAST_SLA, watchdog_interval_seconds=0.2)
    complaint_queue = settings.routes["complaint"].queue
    text = "the officer on the phone was rude to me and hung up, I want to make a complaint"
    async with serving(settings) as (_ctx, url):
        prom_port = _free_port()
        config = tmp_path / "prometheus.yml"
        rules = sorted(str(p) for p in (ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: {rules}\n"
            "scrape_configs:\n"
            "  - job_name: triage\n"
            f"    static_configs: [{{targets: ['{url.split('//')[1]}']}}]\n")
        prometheus = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{prom_port}"
        try:
            async with aiohttp.ClientSession() as session:
                for _ in range(100):
                    try:
                        async with session.get(base + "/-/ready") as response:
                            if response.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.2)
                assert await _until(session, base, 'up{job="triage"}', 1) == 1

                await send(settings, settings.inbound_exchange,
                           [inbound("in-time", text), inbound("too-late", text + " today")])
                tickets = {b["message"]["id"]: b for _, b in
                           await drain(settings, complaint_queue, 2)}
                answered = tickets["in-time"]["ticket_id"]
                now = datetime.now(UTC)
                await send(settings, settings.events_exchange, [
                    event_body(answered, "claimed", now, event_id="c1", agent="a1"),
                    event_body(answered, "responded", now, event_id="r1", agent="a1")])

                met = 'sum(triage_sla_responses_total{category="complaint",met="true"})'
                breaches = 'sum(triage_sla_breaches_total{category="complaint"})'
                escalated = 'sum(triage_escalations_total{category="complaint"})'
                compliance = 'triage:sla_compliance:ratio_1h{category="complaint"}'
                assert await _until(session, base, met, 1) == 1
                assert await _until(session, base, breaches, 1) == 1
                assert await _until(session, base, escalated, 1) == 1
                assert await _until(session, base, compliance, 1) == 1
                histogram = ('sum(triage_first_response_seconds_bucket'
                             '{category="complaint",le="3.0"})')
                assert await _until(session, base, histogram, 1) == 1
                # the alert appears at the rule evaluation after the breach is scraped: on a
                # slow machine that can be after the queries above are already true
                alert = 'count(ALERTS{alertname="TriageSLABreached",category="complaint"})'
                assert await _until(session, base, alert, 1) == 1, \
                    "the breach alert is pending or firing"
        finally:
            prometheus.terminate()
            prometheus.wait(timeout=10)
