"""The command line as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def triage(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None,
           ) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "triage.cli", *args], input=stdin,
                          capture_output=True, cwd=ROOT, env={**os.environ, **(env or {})},
                          timeout=120)


def test_classify_command() -> None:
    result = triage("classify", stdin=b'{"id": "1", "text": "where do I collect lost property"}\n'
                                      b'{"id": 2}\n')
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert result.returncode == 1, "a malformed line makes the exit status 1"
    assert lines[0]["id"] == "1" and lines[0]["category"] == "enquiry"
    assert lines[1] == {"line": 2, "error": "missing or invalid 'text' (a string)"}
    assert b"classified 1 messages, 1 malformed lines" in result.stderr


def test_bad_setting_stops_with_its_name() -> None:
    result = triage("models", "list", env={"TRIAGE_PREFETCH": "-3"})
    assert result.returncode == 2
    assert b"TRIAGE_PREFETCH" in result.stderr


def test_evaluate_json_and_png(tmp_path: Path) -> None:
    png = tmp_path / "cm.png"
    result = triage("evaluate", "--data", "models/corpus/corpus.jsonl", "--json", "--png",
                    str(png), "--no-eval")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report["per_class"]) == {"urgent", "crime_report", "complaint", "enquiry",
                                        "chatter"}
    assert 0 <= report["macro_f1"] <= 1 and report["urgent_recall"] is not None
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_models_list_marks_the_promoted_one() -> None:
    result = triage("models", "list")
    assert result.returncode == 0
    assert b" * " in result.stdout and b"promoted" in result.stdout


def test_tampered_model_is_refused_by_the_cli(tmp_path: Path) -> None:
    import shutil

    models = tmp_path / "models"
    shutil.copytree(ROOT / "models", models, ignore=shutil.ignore_patterns("corpus"))
    version = json.loads((models / "registry.json").read_text())["promoted"]
    with (models / version / "model.joblib").open("ab") as handle:
        handle.write(b"tamper")
    result = triage("--models-dir", str(models), "classify", stdin=b'{"id":1,"text":"hi"}\n')
    assert result.returncode == 1
    assert b"does not match the manifest" in result.stderr
