"""The Prometheus and Grafana deliverables under deploy/ are valid and use real metrics.

promtool checks the scrape configuration and the rule files and runs the rule unit tests.
Without promtool on PATH these tests skip locally and fail in CI (``CI`` set), so CI cannot
pass them silently. The metric-name tests need no promtool: every ``triage_*`` name in the
rules and dashboard expressions must be one that ``triage/metrics.py`` exposes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS_DIR / "tests").glob("*.test.yml"))
DASHBOARD = REPO / "deploy" / "grafana" / "triage-dashboard.json"
METRICS_PY = REPO / "triage" / "metrics.py"

#: A PromQL identifier; metric names are those starting with triage_ (regex triage_[a-z_]+).
#: Identifiers containing ':' are recording-rule names and are not checked here.
IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
METRIC_PREFIX = re.compile(r"triage_[a-z_]+")
#: ``Counter("triage_x_total", ...`` and the like in triage/metrics.py.
DEFINITION = re.compile(r"\b(Counter|Gauge|Histogram|Summary|Info)\(\s*\"(triage_[a-z_]+)\"")
#: Grafana's interval macros, replaced by a duration so that expressions parse as PromQL.
GRAFANA_MACROS = re.compile(
    r"\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}"
)


def promtool() -> str:
    """Path to promtool; skip without it locally, fail without it in CI."""
    path = shutil.which("promtool")
    if path is None:
        message = "promtool is not on PATH (Debian/Ubuntu: apt-get install prometheus)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must run these checks")
        pytest.skip(message)
    return path


def run_promtool(*args: str) -> None:
    """Run promtool from the repository root and fail with its output unless it exits 0."""
    result = subprocess.run(
        [promtool(), *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    output = f"$ promtool {' '.join(args)}\n{result.stdout}{result.stderr}"
    assert result.returncode == 0, output


def relative(path: Path) -> str:
    return str(path.relative_to(REPO))


def used_metric_names(text: str) -> set[str]:
    """Every identifier starting with triage_ in ``text``, whole (so triage_x2 stays triage_x2)."""
    return {
        token
        for token in IDENTIFIER.findall(text)
        if ":" not in token and METRIC_PREFIX.match(token)
    }


def exposed_metric_names() -> set[str]:
    """Every series name triage/metrics.py exposes, as prometheus_client names them."""
    names: set[str] = set()
    for kind, name in DEFINITION.findall(METRICS_PY.read_text(encoding="utf-8")):
        if kind == "Counter":
            names.add(name if name.endswith("_total") else f"{name}_total")
        elif kind in {"Histogram", "Summary"}:
            names.update(f"{name}{suffix}" for suffix in ("_bucket", "_count", "_sum"))
            if kind == "Summary":
                names.add(name)
        elif kind == "Info":
            names.add(f"{name}_info")
        else:
            names.add(name)
    return names


def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def dashboard_expressions() -> list[str]:
    """PromQL of every panel target and every query variable of the dashboard."""
    data = dashboard()
    exprs = [
        target["expr"]
        for panel in walk_panels(data.get("panels", []))
        for target in panel.get("targets", [])
        if target.get("expr")
    ]
    for variable in data.get("templating", {}).get("list", []):
        query = variable.get("query")
        if variable.get("type") == "query" and isinstance(query, dict | str):
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


def test_deliverables_exist() -> None:
    assert CONFIG.is_file()
    assert [p.name for p in RULE_FILES] == ["triage-alerts.yml", "triage-recording.yml"]
    assert TEST_FILES, "no promtool unit tests under deploy/prometheus/tests/"
    assert DASHBOARD.is_file()


def test_promtool_check_config() -> None:
    run_promtool("check", "config", relative(CONFIG))


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(rule_file: Path) -> None:
    run_promtool("check", "rules", relative(rule_file))


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_test_rules(test_file: Path) -> None:
    run_promtool("test", "rules", relative(test_file))


def test_every_alert_has_a_unit_test() -> None:
    alerts = set(re.findall(r"^\s*-\s*alert:\s*(\w+)", rule_text("triage-alerts.yml"), re.M))
    tested = {
        name
        for path in TEST_FILES
        for name in re.findall(r"alertname:\s*(\w+)", path.read_text(encoding="utf-8"))
    }
    assert alerts, "no alerts found"
    assert alerts <= tested, f"alerts without a promtool unit test: {sorted(alerts - tested)}"


def test_every_alert_has_severity_and_annotations() -> None:
    # Split the alerts file into one chunk per rule and look for the required keys in each.
    chunks = re.split(r"^\s*-\s*(?=alert:|record:)", rule_text("triage-alerts.yml"), flags=re.M)
    rules = [chunk for chunk in chunks if chunk.startswith("alert:")]
    assert rules
    for rule in rules:
        name = rule.split()[1]
        assert re.search(r"^\s+severity:\s*(critical|warning)\s*$", rule, re.M), name
        assert re.search(r"^\s+summary:", rule, re.M), name
        assert re.search(r"^\s+description:", rule, re.M), name


def test_compliance_recording_rules_are_unit_tested() -> None:
    tests = "\n".join(path.read_text(encoding="utf-8") for path in TEST_FILES)
    for name in ("triage:sla_compliance:ratio_1h", "triage:sla_compliance:ratio_24h"):
        assert f"record: {name}" in rule_text("triage-recording.yml")
        assert f"expr: {name}" in tests, f"{name} has no promql_expr_test"


def test_dashboard_is_importable_json() -> None:
    data = dashboard()
    assert data["title"]
    assert data["uid"]
    assert 36 <= data["schemaVersion"] <= 41
    panels = list(walk_panels(data["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    datasource_vars = [
        v
        for v in data["templating"]["list"]
        if v["type"] == "datasource" and v["query"] == "prometheus"
    ]
    inputs = [i for i in data.get("__inputs", []) if i.get("pluginId") == "prometheus"]
    assert datasource_vars or inputs, "no Prometheus datasource variable or input"
    for panel in panels:
        if panel.get("targets"):
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
    assert dashboard_expressions()


def test_dashboard_expressions_parse(tmp_path: Path) -> None:
    """Every dashboard query is valid PromQL (checked by promtool as recording rules)."""
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for number, expr in enumerate(dashboard_expressions()):
        promql = GRAFANA_MACROS.sub("5m", expr)
        lines += [f"      - record: dashboard:expr_{number}", f"        expr: {json.dumps(promql)}"]
    rule_file = tmp_path / "dashboard-rules.yml"
    rule_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    run_promtool("check", "rules", str(rule_file))


def test_used_metric_names() -> None:
    expr = 'sum(rate(triage_a_total[5m])) / triage:b:ratio_1h + triage_c2 + up{job="triage"}'
    assert used_metric_names(expr) == {"triage_a_total", "triage_c2"}


def test_metrics_py_parses() -> None:
    names = exposed_metric_names()
    # A few names the rules rely on, with prometheus_client's suffixes applied.
    for name in (
        "triage_sla_responses_total",
        "triage_first_response_seconds_bucket",
        "triage_model_info",
        "triage_model_loaded",
        "triage_consumers_attached",
    ):
        assert name in names


@pytest.mark.parametrize(
    "source", [*(p.name for p in RULE_FILES), DASHBOARD.name], ids=lambda name: name
)
def test_only_defined_metrics_are_used(source: str) -> None:
    is_dashboard = source == DASHBOARD.name
    text = "\n".join(dashboard_expressions()) if is_dashboard else rule_text(source)
    used = used_metric_names(text)
    assert used, f"no triage_ metric names found in {source}"
    unknown = sorted(used - exposed_metric_names())
    assert not unknown, f"{source} uses metrics that triage/metrics.py does not define: {unknown}"


def rule_text(name: str) -> str:
    return (PROMETHEUS_DIR / "rules" / name).read_text(encoding="utf-8")
