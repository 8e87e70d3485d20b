"""The ``triage`` command line: one sub-command per job, settings read once at the start."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from triage import config, registry
from triage.config import ConfigError, Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "models_dir", None):
        overrides["models_dir"] = args.models_dir
    return config.load(**overrides)


def _safety(settings: Settings) -> Any:
    from triage.safety import load_rules

    return load_rules(settings.safety_rules)


def _load_model(settings: Settings, version: str | None) -> Any:
    from triage.classify import load_model

    return load_model(settings.models_dir, _safety(settings), version=version,
                      signing_key=settings.model_signing_key)


def _rules(settings: Settings, model: Any) -> Any:
    from triage.route import Rules

    return Rules.from_settings(settings, model.urgent_threshold)


# --- train / evaluate -------------------------------------------------------------------------

def cmd_train(args: argparse.Namespace) -> int:
    """Compare candidates by CV, fit the chosen one, write a new version into models/."""
    from tqdm import tqdm

    from triage.train import train

    settings = _settings(args)
    candidates = args.candidates.split(",") if args.candidates else None
    bar = tqdm(desc="training", unit="step", file=sys.stderr, dynamic_ncols=True)

    def progress(step: str) -> None:
        bar.set_postfix_str(step)
        bar.update(1)

    result = train(settings, _safety(settings), corpus_path=args.corpus or settings.corpus_path,
                   extra=args.extra, candidates=candidates, folds=args.folds,
                   recall_target=args.urgent_recall_target, progress=progress)
    bar.close()
    manifest = result.manifest
    print(f"wrote {result.folder} (candidate {manifest['candidate']}, "
          f"urgent threshold {manifest['urgent_threshold']:.2f})")
    print("cross-validated comparison (train split):")
    print(f"  {'candidate':<30}{'macro-F1':>9}{'urgent R':>9}{'logloss':>9}{'docs/s':>9}"
          f"{'1-by-1/s':>9}")
    for row in manifest["selection"]["candidates"]:
        print(f"  {row['name']:<30}{row['macro_f1']:>9.4f}{row['urgent_recall']:>9.3f}"
              f"{row['log_loss']:>9.3f}{row['predict_docs_per_second']:>9.0f}"
              f"{row.get('predict_one_per_second', 0):>9.0f}")
    test = manifest["metrics"]["test"]
    print(f"test split: macro-F1 {test['macro_f1']:.4f}, urgent recall {test['urgent_recall']:.4f}")
    alarms = manifest["metrics"].get("real_chatter")
    if alarms:
        print(f"real chatter: {alarms['urgent_share']:.2%} to urgent, "
              f"{alarms['crime_report_share']:.2%} to crime_report")
    if args.promote:
        registry.promote(settings.models_dir, manifest["version"], settings.model_signing_key,
                         _rescorer(settings))
        print(f"promoted {manifest['version']}")
    else:
        print(f"promote it with: triage models promote {manifest['version']}")
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Per-class metrics, confusion matrix (text and PNG) and false alarms on real chatter."""
    from triage import corpus
    from triage.evaluate import evaluate, false_alarms, format_report, plot_confusion

    settings = _settings(args)
    model = _load_model(settings, args.model)
    rules = _rules(settings, model)
    examples = corpus.load(args.data)
    if args.split != "all":
        examples = [e for e in examples if e.split == args.split]
    if not examples:
        print(f"no labelled messages in {args.data} (split {args.split})", file=sys.stderr)
        return EXIT_FAILED
    report = evaluate(model, rules, [e.text for e in examples], [e.label for e in examples])
    alarms = None if args.no_eval else false_alarms(
        model, rules, settings.eval_dir / "real-chatter.jsonl")
    png = args.png or Path(f"confusion-{model.version}.png")
    plot_confusion(report, png, f"{model.version} on {args.data.name} ({args.split})")
    result = {"model_version": model.version, "data": str(args.data), "split": args.split,
              **report, "real_chatter": alarms, "confusion_png": str(png)}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"model {model.version} on {args.data} ({args.split}, {len(examples)} messages)\n")
        print(format_report(report, alarms))
        print(f"\nconfusion matrix written to {png}")
    return EXIT_OK


# --- classify ---------------------------------------------------------------------------------

def _batches(stream: IO[bytes], size: int) -> Iterator[list[tuple[int, bytes]]]:
    batch: list[tuple[int, bytes]] = []
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        batch.append((number, line))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def parse_classify_line(line: bytes) -> tuple[str, str] | str:
    """``(id, text)`` from one input line, or the problem with it."""
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError:
        return "not valid JSON"
    if not isinstance(row, dict):
        return "expected a JSON object"
    message_id, text = row.get("id"), row.get("text")
    if not isinstance(message_id, str | int) or isinstance(message_id, bool) or message_id == "":
        return "missing or invalid 'id' (a non-empty string or an integer)"
    if not isinstance(text, str):
        return "missing or invalid 'text' (a string)"
    if not text.strip():
        return "'text' is empty"
    return str(message_id), text


def classify_stream(model: Any, rules: Any, source: IO[bytes], sink: IO[bytes],
                    batch_size: int) -> tuple[int, int]:
    """Classify JSON lines from ``source`` into ``sink``; return (classified, malformed)."""
    from triage.route import decide

    good = bad = 0
    for batch in _batches(source, batch_size):
        parsed = [(n, parse_classify_line(line)) for n, line in batch]
        ok = [(n, p) for n, p in parsed if isinstance(p, tuple)]
        predictions = iter(model.predict([p[1] for _, p in ok]))
        out = []
        for number, item in parsed:
            if isinstance(item, str):
                bad += 1
                out.append(orjson.dumps({"line": number, "error": item}))
                continue
            decision = decide(next(predictions), rules)
            good += 1
            out.append(orjson.dumps({
                "id": item[0], "category": decision.category, "priority": decision.priority,
                "queue": decision.queue, "confidence": round(decision.confidence, 4),
                "review": decision.review, "reasons": list(decision.reasons),
                "model_version": model.version}))
        sink.write(b"\n".join(out) + b"\n")
    sink.flush()
    return good, bad


def cmd_classify(args: argparse.Namespace) -> int:
    """Classify JSON lines on stdin; one JSON line per message on stdout."""
    settings = _settings(args)
    model = _load_model(settings, args.model)
    good, bad = classify_stream(model, _rules(settings, model), sys.stdin.buffer,
                                sys.stdout.buffer, args.batch)
    print(f"classified {good} messages, {bad} malformed lines", file=sys.stderr)
    return EXIT_FAILED if bad else EXIT_OK


# --- models -----------------------------------------------------------------------------------

def cmd_models_list(args: argparse.Namespace) -> int:
    """Every version on disk, which is promoted, and its test figures."""
    settings = _settings(args)
    reg = registry.read_registry(settings.models_dir)
    rows = registry.versions(settings.models_dir)
    if not rows:
        print(f"no models in {settings.models_dir}")
        return EXIT_OK
    print(f"   {'version':<28}{'candidate':<30}{'macro-F1':>9}{'urgent R':>9}  state")
    for m in rows:
        test = m.get("metrics", {}).get("test", {})
        state = "promoted" if m["version"] == reg.get("promoted") else (
            "previous" if m["version"] in reg.get("history", []) else "")
        try:
            registry.verify(settings.models_dir, m["version"], settings.model_signing_key)
        except registry.ModelError:
            state = (state + " UNVERIFIED").strip()
        mark = "*" if m["version"] == reg.get("promoted") else " "
        print(f" {mark} {m['version']:<28}{m.get('candidate', '?'):<30}"
              f"{test.get('macro_f1', 0):>9.4f}{test.get('urgent_recall') or 0:>9.4f}  {state}")
    return EXIT_OK


def _rescorer(settings: Settings) -> registry.Rescore:
    from triage.evaluate import rescorer

    return rescorer(settings, _safety(settings))


def cmd_models_promote(args: argparse.Namespace) -> int:
    """Promote a version, or say why not."""
    settings = _settings(args)
    registry.promote(settings.models_dir, args.version, settings.model_signing_key,
                     _rescorer(settings))
    print(f"promoted {args.version}; running services switch on their next reload")
    return EXIT_OK


def cmd_models_rollback(args: argparse.Namespace) -> int:
    """Go back to the previously promoted version."""
    settings = _settings(args)
    reg = registry.rollback(settings.models_dir, settings.model_signing_key)
    print(f"rolled back; promoted is now {reg['promoted']}")
    return EXIT_OK


# --- service ----------------------------------------------------------------------------------

def _logging(settings: Settings) -> None:
    import logging

    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def cmd_worker(args: argparse.Namespace) -> int:
    """Run the service: consume, classify, route; /metrics, /healthz, /readyz over HTTP."""
    from aiohttp import web

    from triage.api import build_app
    from triage.http import AccessLog

    settings = _settings(args)
    _logging(settings)
    web.run_app(build_app(settings), host=settings.http_host, port=settings.http_port,
                shutdown_timeout=settings.shutdown_grace_seconds, print=None,
                handle_signals=True, access_log_class=AccessLog)
    return EXIT_OK


async def _publish_file(settings: Settings, path: Path, exchange: str) -> int:
    from triage.broker import connect, declare, publish_lines

    bodies = [line.rstrip(b"\n") for line in path.read_bytes().splitlines() if line.strip()]
    connection = await connect(settings)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        await declare(channel, settings)
        return await publish_lines(channel, exchange, bodies, settings.publish_timeout_seconds)
    finally:
        await connection.close()


def cmd_publish(args: argparse.Namespace) -> int:
    """Send each line of a JSON-lines file to the inbound exchange, with confirms."""
    import asyncio

    settings = _settings(args)
    exchange = args.exchange or settings.inbound_exchange
    sent = asyncio.run(_publish_file(settings, args.file, exchange))
    print(f"published {sent} messages to {exchange} (confirmed by the broker)")
    return EXIT_OK


async def _peek(settings: Settings, queue_name: str, count: int) -> list[dict[str, Any]]:
    from triage.broker import connect

    connection = await connect(settings)
    shown: list[dict[str, Any]] = []
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(queue_name, ensure=True)
        held = []
        for _ in range(count):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            held.append(message)
            try:
                body: Any = orjson.loads(message.body)
            except orjson.JSONDecodeError:
                body = message.body.decode("utf-8", "replace")
            headers = {k: (v.decode() if isinstance(v, bytes) else v)
                       for k, v in (message.headers or {}).items() if k.startswith("x-")}
            shown.append({"headers": headers, "body": body})
        for message in held:
            await message.nack(requeue=True)
    finally:
        await connection.close()
    return shown


def cmd_peek(args: argparse.Namespace) -> int:
    """Show up to N messages waiting in a queue, and put them back."""
    import asyncio

    settings = _settings(args)
    shown = asyncio.run(_peek(settings, args.queue, args.count))
    for item in shown:
        print(json.dumps(item, default=str, ensure_ascii=False))
    print(f"{len(shown)} message(s) shown from {args.queue}; all put back", file=sys.stderr)
    return EXIT_OK


async def _queue_counts(settings: Settings) -> dict[str, int]:
    from triage.broker import connect, declare

    connection = await connect(settings)
    try:
        channel = await connection.channel()
        await declare(channel, settings)
        names = [settings.inbound_queue, *settings.ticket_queues, settings.dead_queue,
                 settings.events_queue]
        counts = {}
        for name in names:
            queue = await channel.declare_queue(name, passive=True)
            counts[name] = int(queue.declaration_result.message_count or 0)
        return counts
    finally:
        await connection.close()


def cmd_queues(args: argparse.Namespace) -> int:
    """Messages waiting in each queue of the topology."""
    import asyncio

    counts = asyncio.run(_queue_counts(_settings(args)))
    if args.json:
        print(json.dumps(counts))
    else:
        for name, count in counts.items():
            print(f"{name:<20}{count:>8}")
    return EXIT_OK


async def _feedback(settings: Settings) -> list[dict[str, Any]]:
    from triage.store import Store

    store = await Store.open(settings.db_url)
    try:
        rows = await store.reclassified()
    finally:
        await store.close()
    out = []
    for row in rows:
        ticket = orjson.loads(row["body"])
        message = ticket["message"]
        out.append({"id": f"fb-{row['ticket_id']}", "text": message["text"],
                    "label": row["reclassified_to"], "split": "train", "source": "feedback",
                    "model_category": ticket["category"],
                    "model_version": ticket["model_version"],
                    "kind": message["kind"], "platform": message["platform"]})
    return out


def cmd_feedback_export(args: argparse.Namespace) -> int:
    """Write agents' corrections as labelled JSON lines for `triage train --extra`."""
    import asyncio

    rows = asyncio.run(_feedback(_settings(args)))
    with args.out.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} corrected examples to {args.out}; "
          f"train on them with: triage train --extra {args.out}")
    return EXIT_OK


# --- corpus -----------------------------------------------------------------------------------

def cmd_corpus_build(args: argparse.Namespace) -> int:
    """Merge the hand-written parts into corpus.jsonl and print its figures."""
    from triage import corpus

    parts = sorted(args.parts.glob("*.jsonl"))
    examples = corpus.build(parts, args.out)
    print(json.dumps(corpus.stats(examples), indent=2))
    return EXIT_OK


def cmd_corpus_stats(args: argparse.Namespace) -> int:
    """Class mix, splits and near-duplicate share of a corpus file."""
    from triage import corpus

    print(json.dumps(corpus.stats(corpus.load(args.path)), indent=2))
    return EXIT_OK


# --- parser -----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(prog="triage", description=__doc__)
    parser.add_argument("--models-dir", type=Path, help="overrides TRIAGE_MODELS_DIR")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Callable[[argparse.Namespace], int], help_: str,
            into: Any = sub) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = into.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    p = add("train", cmd_train, "train a new model version from the labelled corpus")
    p.add_argument("--corpus", type=Path, help="default TRIAGE_CORPUS_PATH")
    p.add_argument("--extra", type=Path, nargs="*", default=[],
                   help="more labelled JSON lines (e.g. from `triage feedback export`)")
    p.add_argument("--candidates", help="comma-separated subset of candidates to compare")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--urgent-recall-target", type=float, default=0.985,
                   help="out-of-fold urgent recall the urgent threshold is tuned to reach")
    p.add_argument("--promote", action="store_true", help="promote it if it passes the gates")

    p = add("evaluate", cmd_evaluate, "measure a model on labelled data")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--split", choices=("test", "train", "all"), default="test")
    p.add_argument("--model", help="version (default: the promoted one)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--png", type=Path, help="where to write the confusion matrix")
    p.add_argument("--no-eval", action="store_true", help="skip the real-chatter false alarms")

    p = add("classify", cmd_classify, "classify JSON lines from stdin to stdout")
    p.add_argument("--model", help="version (default: the promoted one)")
    p.add_argument("--batch", type=int, default=1000)

    models = add("models", lambda a: EXIT_USAGE, "list, promote or roll back models")
    msub = models.add_subparsers(dest="models_command", required=True)
    add("list", cmd_models_list, "list model versions", msub)
    add("promote", cmd_models_promote, "promote a version", msub).add_argument("version")
    add("rollback", cmd_models_rollback, "return to the previous version", msub)

    add("worker", cmd_worker, "run the triage service (TRIAGE_* settings)")
    p = add("publish", cmd_publish, "publish a JSON-lines file to the inbound exchange")
    p.add_argument("file", type=Path)
    p.add_argument("--exchange", help="default: TRIAGE_INBOUND_EXCHANGE")
    p = add("peek", cmd_peek, "show messages waiting in a queue without losing them "
            "(each peek counts as one delivery attempt on a quorum queue)")
    p.add_argument("queue")
    p.add_argument("--count", type=int, default=10)
    p = add("queues", cmd_queues, "count the messages waiting in each queue")
    p.add_argument("--json", action="store_true")

    feedback = add("feedback", lambda a: EXIT_USAGE, "agents' corrections as training data")
    fsub = feedback.add_subparsers(dest="feedback_command", required=True)
    p = add("export", cmd_feedback_export, "export reclassified tickets as labelled lines", fsub)
    p.add_argument("--out", type=Path, default=Path("feedback.jsonl"))

    corpus_p = add("corpus", lambda a: EXIT_USAGE, "build or describe the labelled corpus")
    csub = corpus_p.add_subparsers(dest="corpus_command", required=True)
    p = add("build", cmd_corpus_build, "merge part files into the corpus", csub)
    p.add_argument("--parts", type=Path, default=Path("models/corpus/parts"))
    p.add_argument("--out", type=Path, default=Path("models/corpus/corpus.jsonl"))
    p = add("stats", cmd_corpus_stats, "figures of a corpus file", csub)
    p.add_argument("path", type=Path, nargs="?", default=Path("models/corpus/corpus.jsonl"))

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``triage`` command."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"triage: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except registry.ModelError as exc:
        print(f"triage: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (OSError, ValueError) as exc:
        print(f"triage: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
