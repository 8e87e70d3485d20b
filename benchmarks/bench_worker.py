"""Benchmark the triage worker against a raw passthrough on the local RabbitMQ.

    .venv/bin/python benchmarks/bench_worker.py [--repeat N] [--messages N] [--seconds S]

In one run, in a dedicated vhost that is deleted at the end:

1. Sustained rate: pre-fill an inbound queue with N inbound v1 messages, start the consumer
   process, and time from its first output message to the N-th (queue depths polled with
   passive declares, so the measurement takes no CPU from the system under test). First for
   ``benchmarks/passthrough.py`` (the machine's limit for this pattern), then for
   ``triage worker`` with a fresh SQLite store and the promoted model. ``--repeat N``
   alternates the two drains N times and reports the median of the rounds' ratios, so that a
   slow spell of the machine does not decide the figure.
2. Latency: with the consumer running and idle, a paced publisher offers exactly R msg/s for
   S seconds (each rate of ``--rates``); a collector process consuming every output queue
   records when each message id arrives. Reported: p50/p95/p99/max from inbound publish to
   output received, and the offered rate achieved.

Progress goes to stderr; the table (or ``--json``) to stdout. No message text is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Any

import aio_pika
import aiohttp
import orjson
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage
from prometheus_client.parser import text_string_to_metric_families

if __package__ in (None, ""):  # run as a script: the repository root holds `benchmarks`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import triage
from benchmarks.procstat import (
    machine_busy_seconds,
    machine_wait_seconds,
    process_cpu_seconds,
    tree_cpu_seconds,
)
from triage import config
from triage.broker import declare, persistent, publish_confirmed, publish_lines, queue_arguments

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BROKER = "amqp://guest:guest@127.0.0.1:5672/"
PT_IN, PT_OUT = "bench.pt.in", "bench.pt.out"
#: The four police accounts of the sample feed, with their account types.
ACCOUNTS = (("@NorthShiresPolice", "force"), ("@SouthvaleConstab", "force"),
            ("@WestvaleNPT_Central", "neighbourhood"), ("@PCJordanBeat", "officer"))
KINDS = frozenset({"mention", "reply", "comment", "dm"})
PREFILL_WINDOW = 1000
LATENCY_TARGET_MS = 100.0
RATIO_TARGET = 0.70
#: Above this CPU share (% of one core) used by other processes, the table warns.
NOISY_OTHERS_PCT = 25.0
#: Above this iowait + steal (% of one core) in a phase, latency percentiles are disturbed.
NOISY_WAIT_PCT = 20.0


def log(text: str) -> None:
    """Progress on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# --- inputs -----------------------------------------------------------------------------------

def load_texts(path: Path) -> list[tuple[str, str, str]]:
    """(text, platform, kind) of every usable corpus line."""
    out = []
    for line in path.read_bytes().splitlines():
        if not line.strip():
            continue
        row = orjson.loads(line)
        text = row.get("text")
        if isinstance(text, str) and text.strip() and len(text) < 20000:
            plat, kind = str(row.get("platform") or "x"), str(row.get("kind"))
            out.append((text, plat if plat.isalnum() and plat.islower() else "x",
                        kind if kind in KINDS else "mention"))
    if not out:
        raise SystemExit(f"no usable texts in {path}")
    return out


def make_bodies(texts: Sequence[tuple[str, str, str]], prefix: str, count: int,
                seed: int) -> list[tuple[str, bytes]]:
    """``count`` valid inbound v1 messages with unique ids ``prefix-nnnnnn``: (id, body)."""
    rnd = random.Random(seed)
    created = datetime.now(UTC).isoformat()
    out = []
    for i in range(count):
        text, plat, kind = texts[rnd.randrange(len(texts))]
        handle, account_type = ACCOUNTS[rnd.randrange(len(ACCOUNTS))]
        user = rnd.randrange(1_000_000)
        message_id = f"{prefix}-{i:06d}"
        out.append((message_id, orjson.dumps({
            "id": message_id, "platform": plat, "kind": kind, "text": text,
            "created_at": created, "author": {"id": f"user-{user}", "handle": f"@member{user}"},
            "account": {"handle": handle, "type": account_type}, "lang": "en"})))
    return out


def resolve_models_dir(given: Path | None) -> Path:
    """The models folder to use: ``given``, else ./models if it has a promoted version."""
    folder = given or ROOT / "models"
    try:
        promoted = json.loads((folder / "registry.json").read_text()).get("promoted")
    except (OSError, ValueError):
        promoted = None
    if not promoted:
        hint = "" if given else " (pass --models-dir DIR)"
        raise SystemExit(f"no promoted model in {folder}/registry.json{hint}")
    return folder.resolve()


# --- processes and the broker -----------------------------------------------------------------

def rabbitmqctl(*args: str) -> None:
    """Run one rabbitmqctl command; raise with its output if it fails."""
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr.strip()}")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the benchmark dies (Linux), so nothing is left running."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    """One subprocess under test, its log file and its name."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    def check(self) -> None:
        """Raise if the process has exited."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; "
                               f"last lines of its log:\n{self.tail()}")

    def tail(self, lines: int = 15) -> str:
        """The end of its log (the service never logs message text)."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM, wait for a clean exit, then SIGKILL."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log_file.close()


class Children:
    """Every subprocess started, so that all of them are stopped on the way out."""

    def __init__(self) -> None:
        self.running: list[Child] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], workdir: Path) -> Child:
        """Start a subprocess with its output in ``workdir/<name>.log``."""
        log_path = workdir / f"{name}.log"
        log_file = log_path.open("wb")
        proc = subprocess.Popen(argv, env=env, cwd=workdir, stdout=log_file,
                                stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        child = Child(name, proc, log_path, log_file)
        self.running.append(child)
        return child

    def stop(self, child: Child) -> None:
        """Stop one subprocess."""
        child.stop()
        if child in self.running:
            self.running.remove(child)

    def stop_all(self) -> None:
        """Stop every subprocess still running."""
        while self.running:
            self.stop(self.running[-1])


def broker_pid() -> int | None:
    """The pid of the local RabbitMQ node (beam.smp running ``rabbit boot``); None if none.

    ``rabbitmqctl`` runs a short-lived beam.smp of its own: only the node's command line boots
    the ``rabbit`` application.
    """
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
                if (entry / "comm").read_text().strip() == "beam.smp" and b"rabbit boot" in cmdline:
                    return int(entry.name)
    return None


@dataclass
class CpuMeter:
    """CPU shares (% of one core) of the consumer, broker, benchmark and everything else."""

    consumer: int
    broker: int | None
    bench: list[int]
    start: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

    def _read(self) -> tuple[float, ...]:
        return (time.monotonic(), machine_busy_seconds(), tree_cpu_seconds(self.consumer),
                process_cpu_seconds(self.broker), sum(process_cpu_seconds(p) for p in self.bench),
                *machine_wait_seconds())

    def begin(self) -> None:
        """Start the interval."""
        self.start = self._read()

    def end(self) -> dict[str, float]:
        """Shares since :meth:`begin`: consumer, broker, bench, others.

        Raises if the broker restarted meanwhile (someone else's doing): the figures are void.
        """
        now = self._read()
        if self.broker is not None and broker_pid() != self.broker:
            raise RuntimeError("RabbitMQ restarted during the measurement; the figures are void")
        d = [b - a for a, b in zip(self.start, now, strict=True)]
        seconds = max(1e-9, d[0])
        others = max(0.0, d[1] - d[2] - d[3] - d[4])
        return {"consumer": round(100 * d[2] / seconds, 1),
                "broker": round(100 * d[3] / seconds, 1) if self.broker else -1.0,
                "bench": round(100 * d[4] / seconds, 1), "others": round(100 * others / seconds, 1),
                "iowait": round(100 * d[5] / seconds, 1), "steal": round(100 * d[6] / seconds, 1)}


# --- measuring --------------------------------------------------------------------------------

@dataclass
class Rate:
    """Sustained rate of one consumer process from a pre-filled queue."""

    process: str
    messages: int
    measured: int
    seconds: float
    msgs_per_s: float
    complete: bool
    dead_lettered: int
    cpu_pct: dict[str, float]
    stages_ms: dict[str, float] = field(default_factory=dict)
    round: int = 1

    @property
    def cpu_us_per_msg(self) -> float:
        """The consumer's CPU time a message (its own processes: stolen time is not in it)."""
        return self.cpu_pct.get("consumer", 0.0) * 1e4 * self.seconds / max(1, self.measured)


@dataclass
class Latency:
    """Publish-to-output latency at one offered rate."""

    process: str
    offered_rate: float
    achieved_rate: float
    sent: int
    received: int
    lost: int
    publish_failures: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    cpu_pct: dict[str, float]
    stages_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class Report:
    """Everything one run measured."""

    machine: dict[str, Any]
    prefill_msgs_per_s: list[float] = field(default_factory=list)
    rates: list[Rate] = field(default_factory=list)
    latencies: list[Latency] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def depth(channel: AbstractChannel, names: Sequence[str]) -> int:
    """Messages ready in these queues (passive declares)."""
    total = 0
    for name in names:
        queue = await channel.declare_queue(name, passive=True)
        total += int(queue.declaration_result.message_count or 0)
    return total


async def purge(channel: AbstractChannel, names: Sequence[str]) -> None:
    """Empty these queues."""
    for name in names:
        await (await channel.get_queue(name, ensure=False)).purge()


async def prefill(channel: AbstractChannel, exchange: str, bodies: list[tuple[str, bytes]],
                  report: Report) -> None:
    """Publish every body with confirms, ``PREFILL_WINDOW`` in flight."""
    start = time.perf_counter()
    await publish_lines(channel, exchange, [b for _, b in bodies], 60.0, window=PREFILL_WINDOW)
    rate = len(bodies) / (time.perf_counter() - start)
    report.prefill_msgs_per_s.append(round(rate, 1))
    log(f"pre-filled {len(bodies)} messages into {exchange} at {rate:.0f} msg/s")


async def sustained_rate(channel: AbstractChannel, child: Child, outputs: Sequence[str],
                         dead: str, n: int, timeout: float, beam: int | None) -> Rate:
    """Time from the first output message to the N-th, polling the output queue depths."""
    deadline = time.monotonic() + timeout
    first_t: float | None = None
    first_count = count = 0
    meter = CpuMeter(child.proc.pid, beam, [os.getpid()])
    last_t = time.monotonic()
    while time.monotonic() < deadline:
        child.check()
        count = await depth(channel, outputs)
        last_t = time.monotonic()
        if first_t is None and count > 0:
            first_t, first_count = last_t, count
            meter.begin()
        if count >= n:
            break
        await asyncio.sleep(0.02 if first_t else 0.05)
    cpu = meter.end()
    if first_t is None:
        raise RuntimeError(f"{child.name}: no output within {timeout:.0f} s")
    seconds = max(1e-9, last_t - first_t)
    rate = (count - first_count) / seconds
    return Rate(process=child.name, messages=n, measured=count, seconds=round(seconds, 3),
                msgs_per_s=round(rate, 1), complete=count >= n,
                dead_lettered=await depth(channel, [dead]), cpu_pct=cpu)


def _collector_main(url: str, queues: list[str], pipe: Connection) -> None:
    """Collector process: consume the output queues, record arrival time per message id."""
    asyncio.run(_collect(url, queues, pipe))


async def _collect(url: str, queues: list[str], pipe: Connection) -> None:
    arrivals: dict[str, float] = {}

    async def on_message(message: AbstractIncomingMessage) -> None:
        now = time.monotonic()  # system-wide on Linux: comparable with the publisher's
        data = orjson.loads(message.body)
        inner = data.get("message")  # a ticket carries the inbound message; passthrough not
        arrivals[str((inner if isinstance(inner, dict) else data).get("id"))] = now

    loop = asyncio.get_running_loop()
    connection = await aio_pika.connect(url, client_properties={"connection_name": "collector"})
    lost: list[str] = []
    connection.close_callbacks.add(lambda *_: lost.append("closed"))
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1000)
        for name in queues:
            await (await channel.get_queue(name, ensure=False)).consume(on_message, no_ack=True)
        pipe.send("ready")
        while True:
            command = await loop.run_in_executor(None, pipe.recv)
            if command == "count":
                pipe.send(-1 if lost else len(arrivals))
            elif command == "take":
                pipe.send(dict(arrivals))
                arrivals.clear()
            else:
                break
    finally:
        await connection.close()


class Collector:
    """The collector process, driven over a pipe."""

    def __init__(self, url: str, queues: Sequence[str]) -> None:
        ctx = mp.get_context("spawn")
        self.pipe, child_end = ctx.Pipe()
        self.process = ctx.Process(target=_collector_main, args=(url, list(queues), child_end),
                                   daemon=True, name="collector")
        self.process.start()

    async def ask(self, command: str, timeout: float = 30.0) -> Any:
        """Send a command and wait for its answer."""
        loop = asyncio.get_running_loop()

        def roundtrip() -> Any:
            if command:
                self.pipe.send(command)
            if not self.pipe.poll(timeout):
                raise RuntimeError(f"the collector did not answer {command or 'ready'!r}")
            return self.pipe.recv()

        return await loop.run_in_executor(None, roundtrip)

    def close(self) -> None:
        """Stop the collector process."""
        with contextlib.suppress(OSError, ValueError):
            self.pipe.send("stop")
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


async def offer(exchange: AbstractExchange, bodies: list[tuple[str, bytes]],
                rate: float) -> tuple[dict[str, float], float, int]:
    """Publish at exactly ``rate`` msg/s by schedule (message i is due at start + i/rate).

    Returns the publish time of each id, the achieved rate and the publish failures.
    """
    sent: dict[str, float] = {}
    tasks: set[asyncio.Task[None]] = set()
    failures = 0

    async def one(message_id: str, body: bytes) -> None:
        nonlocal failures
        sent[message_id] = time.monotonic()
        try:
            await publish_confirmed(exchange, persistent(body, message_id=message_id), "", 30.0)
        except Exception:
            failures += 1

    start = time.monotonic() + 0.01
    i, n = 0, len(bodies)
    while i < n:
        due = min(n, int((time.monotonic() - start) * rate) + 1)
        while i < due:
            task = asyncio.create_task(one(*bodies[i]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
    if tasks:
        await asyncio.wait(tasks, timeout=60)
    times = sorted(sent.values())
    achieved = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    return sent, achieved, failures


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted ``values``."""
    if not values:
        return float("nan")
    rank = max(1, int(-(-q * len(values) // 100)))
    return values[min(len(values), rank) - 1]


Scrape = Callable[[], Awaitable[dict[str, float]]]
BATCH_SIZE, BATCH_SECONDS = "triage_batch_size_messages", "triage_batch_duration_seconds"


def batch_samples(text: str) -> dict[str, float]:
    """The worker's batch-size and per-stage batch-duration sums and counts, from /metrics."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in (f"{BATCH_SIZE}_sum", f"{BATCH_SIZE}_count"):
                out[sample.name] = sample.value
            elif sample.name in (f"{BATCH_SECONDS}_sum", f"{BATCH_SECONDS}_count"):
                out[f"{sample.name}:{sample.labels.get('stage')}"] = sample.value
    return out


def stages(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Mean batch size and mean milliseconds per batch of each worker stage in an interval.

    ``prepare`` covers decode, store look-up, classify and record; ``publish`` the confirms.
    """
    d = {k: v - before.get(k, 0.0) for k, v in after.items()}
    batches = d.get(f"{BATCH_SIZE}_count", 0.0)
    if batches <= 0:
        return {}

    def ms(stage: str) -> float:
        return 1000 * d.get(f"{BATCH_SECONDS}_sum:{stage}", 0.0) / batches

    total, prepare, classify, publish = ms("total"), ms("prepare"), ms("classify"), ms("publish")
    return {"batches": batches, "mean_size": round(d[f"{BATCH_SIZE}_sum"] / batches, 1),
            "decode_store": round(prepare - classify, 2), "classify": round(classify, 2),
            "publish": round(publish, 2), "mark_ack": round(total - prepare - publish, 2),
            "total": round(total, 2)}


async def latency_runs(name: str, url: str, channel: AbstractChannel, exchange: AbstractExchange,
                       outputs: Sequence[str], texts: Sequence[tuple[str, str, str]],
                       rates: Sequence[float], seconds: float, child: Child,
                       tag: str, scrape: Scrape | None = None) -> list[Latency]:
    """Offer each rate for ``seconds`` to an idle consumer; latency per message."""
    await purge(channel, outputs)
    collector = Collector(url, outputs)
    meter = CpuMeter(child.proc.pid, broker_pid(), [os.getpid(), collector.process.pid or 0])
    results = []
    try:
        await collector.ask("", timeout=60)  # "ready"
        for number, rate in enumerate(rates):
            child.check()
            bodies = make_bodies(texts, f"{tag}-{name}-lat{number}", int(rate * seconds),
                                 seed=100 * len(name) + number)
            await asyncio.sleep(1.0)  # idle before each load
            log(f"{name}: offering {rate:g} msg/s for {seconds:g} s")
            before = await scrape() if scrape else {}
            meter.begin()
            sent, achieved, failures = await offer(exchange, bodies, rate)
            cpu = meter.end()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                count = await collector.ask("count")
                if count < 0:
                    raise RuntimeError("the collector lost its broker connection")
                if count >= len(sent):
                    break
                await asyncio.sleep(0.1)
            batches = stages(before, await scrape()) if scrape else {}
            arrivals: dict[str, float] = await collector.ask("take")
            lat = sorted(1000 * (arrivals[k] - t) for k, t in sent.items() if k in arrivals)
            results.append(Latency(
                process=name, offered_rate=rate, achieved_rate=round(achieved, 1),
                sent=len(sent), received=len(lat), lost=len(sent) - len(lat),
                publish_failures=failures,
                p50_ms=round(percentile(lat, 50), 2), p95_ms=round(percentile(lat, 95), 2),
                p99_ms=round(percentile(lat, 99), 2),
                max_ms=round(lat[-1], 2) if lat else float("nan"), cpu_pct=cpu,
                stages_ms=batches))
            log(f"{name} @ {rate:g} msg/s: p50 {results[-1].p50_ms} ms, "
                f"p99 {results[-1].p99_ms} ms, {results[-1].lost} missing")
    finally:
        collector.close()
    return results


async def wait_ready(child: Child, probe: Any, timeout: float) -> None:
    """Wait until ``probe()`` is true, failing early if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child.check()
        if await probe():
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{child.name} not ready within {timeout:.0f} s:\n{child.tail()}")


# --- the run ----------------------------------------------------------------------------------

async def run(args: argparse.Namespace, url: str, workdir: Path,
              children: Children, report: Report) -> None:
    """Both processes, sustained rate then latency, in the vhost ``url`` points at."""
    settings = config.load(amqp_url=url, models_dir=args.models_dir)
    texts = load_texts(args.corpus)
    tag = f"b{os.getpid()}"
    beam = broker_pid()
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    drain_timeout = 20 + args.messages / 250
    ticket_queues = list(settings.ticket_queues)

    connection = await aio_pika.connect(url, client_properties={"connection_name": "bench"})
    try:
        transport = connection.transport
        report.machine["rabbitmq"] = (
            transport.connection.server_properties.get("version") if transport else None)
        pub = await connection.channel(publisher_confirms=True, on_return_raises=True)
        admin = await connection.channel()
        await declare(pub, settings)
        pt_in_x = await pub.declare_exchange(PT_IN, aio_pika.ExchangeType.FANOUT, durable=True)
        pt_out_x = await pub.declare_exchange(PT_OUT, aio_pika.ExchangeType.DIRECT, durable=True)
        pt_in_q = await pub.declare_queue(PT_IN, durable=True, arguments=queue_arguments(settings))
        await pt_in_q.bind(pt_in_x)
        pt_out_q = await pub.declare_queue(PT_OUT, durable=True,
                                           arguments=queue_arguments(settings))
        await pt_out_q.bind(pt_out_x, routing_key=PT_OUT)
        inbound_x = await pub.get_exchange(settings.inbound_exchange, ensure=False)

        port = free_port()
        env = dict(os.environ, TRIAGE_AMQP_URL=url, TRIAGE_HTTP_PORT=str(port),
                   TRIAGE_HTTP_HOST="127.0.0.1", TRIAGE_MODELS_DIR=str(args.models_dir),
                   TRIAGE_DB_URL=f"sqlite:///{workdir / 'triage.db'}")
        for round_ in range(1, args.repeat + 1):
            last = round_ == args.repeat
            # --- passthrough --------------------------------------------------------------------
            await prefill(pub, PT_IN, make_bodies(texts, f"{tag}-pt-rate{round_}", args.messages,
                                                  round_), report)
            passthrough = children.start("passthrough", [
                str(BIN / "python"), str(ROOT / "benchmarks" / "passthrough.py"), "--url", url,
                "--queue", PT_IN, "--exchange", PT_OUT, "--routing-key", PT_OUT,
                # the worker's own batching (TRIAGE_PREFETCH, TRIAGE_BATCH_MAX), so that the
                # baseline is the same broker pattern
                "--prefetch", str(settings.prefetch), "--batch-max", str(settings.batch_max)],
                dict(os.environ), workdir)
            log(f"passthrough (round {round_}): draining the pre-filled queue")
            rate = await sustained_rate(admin, passthrough, [PT_OUT], settings.dead_queue,
                                        args.messages, drain_timeout, beam)
            rate.round = round_
            report.rates.append(rate)
            log(f"passthrough: {rate.msgs_per_s:.0f} msg/s")
            if last and not args.no_passthrough_latency:
                report.latencies += await latency_runs(
                    "passthrough", url, admin, pt_in_x, [PT_OUT], texts, rates, args.seconds,
                    passthrough, tag)
            children.stop(passthrough)
            await purge(admin, [PT_IN, PT_OUT])

            # --- worker -------------------------------------------------------------------------
            await prefill(pub, settings.inbound_exchange,
                          make_bodies(texts, f"{tag}-wk-rate{round_}", args.messages,
                                      100 + round_), report)
            worker = children.start("worker", [str(BIN / "triage"), "worker"], env, workdir)
            log(f"worker (round {round_}): draining the pre-filled queue")
            rate = await sustained_rate(admin, worker, ticket_queues, settings.dead_queue,
                                        args.messages, drain_timeout + 30, beam)
            rate.round = round_
            report.rates.append(rate)
            log(f"worker: {rate.msgs_per_s:.0f} msg/s")
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
                async def ready() -> bool:
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                        async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                            return response.status == 200
                    return False

                async def scrape() -> dict[str, float]:
                    async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                        return batch_samples(await response.text())

                await wait_ready(worker, ready, 60)
                rate.stages_ms = stages({}, await scrape())  # the drain, from a fresh process
                if last:
                    idle_deadline = time.monotonic() + 30
                    while (await depth(admin, [settings.inbound_queue])
                           and time.monotonic() < idle_deadline):
                        await asyncio.sleep(0.2)
                    report.latencies += await latency_runs(
                        "worker", url, admin, inbound_x, ticket_queues, texts, rates,
                        args.seconds, worker, tag, scrape)
            children.stop(worker)
            await purge(admin, [*ticket_queues, settings.dead_queue])
    finally:
        await connection.close()


def machine_info(models_dir: Path) -> dict[str, Any]:
    """Cores, Python, libraries, load and the model version."""
    from importlib.metadata import version

    registry = json.loads((models_dir / "registry.json").read_text())
    return {
        "cores": os.cpu_count(), "python": platform.python_version(),
        "platform": platform.platform(terse=True), "aio_pika": version("aio-pika"),
        "scikit_learn": version("scikit-learn"), "load_avg_1m": round(os.getloadavg()[0], 2),
        "model": registry.get("promoted"), "models_dir": str(models_dir),
        "others_at_start_pct": others_now(), "triage_code": code_state(),
    }


def code_state() -> str:
    """Where the triage package comes from, and its git commit (``+dirty`` if edited)."""
    package = Path(triage.__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(package), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(package), "status", "--porcelain", "--", "."],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = dirty = ""
    return f"{package} {commit or '(not a git checkout)'}{' +dirty' if dirty else ''}"


def others_now(seconds: float = 1.0) -> float:
    """CPU used by processes other than the broker and this one, % of one core."""
    meter = CpuMeter(os.getpid(), broker_pid(), [])
    meter.begin()
    time.sleep(seconds)
    cpu = meter.end()
    return round(cpu["others"] + cpu["broker"], 1) if cpu["broker"] >= 0 else cpu["others"]


def _cpu(cpu: dict[str, float]) -> str:
    return "".join(f"{cpu.get(k, -1):>{w}.0f}"
                   for k, w in (("consumer", 6), ("broker", 8), ("bench", 7), ("others", 8),
                                ("iowait", 8), ("steal", 7)))


def round_ratios(rates: Sequence[Rate]) -> list[tuple[float, float]]:
    """Per round with both drains: (worker/passthrough msg/s, passthrough/worker CPU a msg)."""
    rounds: dict[int, dict[str, Rate]] = {}
    for r in rates:
        rounds.setdefault(r.round, {})[r.process] = r
    return [(pair["worker"].msgs_per_s / max(1e-9, pair["passthrough"].msgs_per_s),
             pair["passthrough"].cpu_us_per_msg / max(1e-9, pair["worker"].cpu_us_per_msg))
            for _, pair in sorted(rounds.items()) if {"worker", "passthrough"} <= pair.keys()]


def format_table(report: Report, messages: int) -> str:
    """The human-readable summary."""
    m = report.machine
    cpu_head = f"{'cons':>6}{'broker':>8}{'bench':>7}{'others':>8}{'iowait':>8}{'steal':>7}"
    lines = [f"machine: {m['cores']} cores, Python {m['python']}, {m['platform']}",
             f"         RabbitMQ {m.get('rabbitmq')}, aio-pika {m['aio_pika']}, scikit-learn "
             f"{m['scikit_learn']}; load {m['load_avg_1m']} and other processes "
             f"{m.get('others_at_start_pct', -1):.0f}% of a core at start",
             f"code: {m['triage_code']}",
             f"model: {m['model']} ({m['models_dir']}); store: fresh SQLite",
             "", "sustained rate from a pre-filled queue (first to last output message; "
             "CPU in % of one core; cons includes the consumer's child processes;",
             "iowait and steal: the machine's time waiting on disk and taken by the hypervisor)",
             f"  {'round':<6}{'process':<12}{'msgs':>7}{'seconds':>9}{'msg/s':>8}"
             f"{'cpu us/msg':>11}   {cpu_head}"]
    for r in report.rates:
        note = "" if r.complete else f"  INCOMPLETE: {r.measured} of {r.messages}"
        note += f"  dead-lettered {r.dead_lettered}" if r.dead_lettered else ""
        lines.append(f"  {r.round:<6}{r.process:<12}{r.messages:>7}{r.seconds:>9.2f}"
                     f"{r.msgs_per_s:>8.0f}{r.cpu_us_per_msg:>11.0f}   {_cpu(r.cpu_pct)}{note}")
    ratios = round_ratios(report.rates)
    if ratios:
        median = statistics.median(r for r, _ in ratios)
        verdict = "ok" if median >= RATIO_TARGET else "BELOW TARGET"
        each = ", ".join(f"{r:.2f}" for r, _ in ratios)
        of = f" (median of {each})" if len(ratios) > 1 else ""
        lines.append(f"  worker/passthrough = {median:.2f}{of}  (target >= {RATIO_TARGET:.2f}: "
                     f"{verdict})")
        cpu_median = statistics.median(c for _, c in ratios)
        lines.append(f"  CPU per message, passthrough/worker = {cpu_median:.2f}"
                     f"{' (median)' if len(ratios) > 1 else ''}: the same ratio in CPU time, "
                     "which time taken by the hypervisor does not inflate")
    if report.latencies:
        lines += ["", "latency, inbound publish -> output message received (ms)",
                  f"  {'process':<12}{'offered':>8}{'achieved':>9}{'msgs':>7}{'lost':>6}{'fail':>5}"
                  f"{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}   {cpu_head}"]
        for lat in report.latencies:
            lines.append(f"  {lat.process:<12}{lat.offered_rate:>8.0f}{lat.achieved_rate:>9.1f}"
                         f"{lat.sent:>7}{lat.lost:>6}{lat.publish_failures:>5}{lat.p50_ms:>8.1f}"
                         f"{lat.p95_ms:>8.1f}"
                         f"{lat.p99_ms:>8.1f}{lat.max_ms:>8.1f}   {_cpu(lat.cpu_pct)}")
        target = [x for x in report.latencies if x.process == "worker" and x.offered_rate == 200]
        if target:
            ok = target[0].p99_ms <= LATENCY_TARGET_MS and target[0].lost == 0
            lines.append(f"  worker p99 @ 200 msg/s = {target[0].p99_ms:.1f} ms  (target <= "
                         f"{LATENCY_TARGET_MS:.0f} ms: {'ok' if ok else 'MISSED'})")
    phases: list[Rate | Latency] = [*report.rates, *report.latencies]
    busiest = max([m.get("others_at_start_pct", 0.0)] + [x.cpu_pct["others"] for x in phases])
    if busiest > NOISY_OTHERS_PCT:
        lines.append(f"WARNING: other processes used up to {busiest:.0f}% of a core during the "
                     "run; the figures are disturbed, run again on a quiet machine")
    waiting = max([x.cpu_pct.get("iowait", 0.0) + x.cpu_pct.get("steal", 0.0) for x in phases],
                  default=0.0)
    if waiting > NOISY_WAIT_PCT:
        lines.append(f"WARNING: up to {waiting:.0f}% of a core waited on disk or was taken by "
                     "the hypervisor in a phase; confirms wait on the disk, so latency "
                     "percentiles are disturbed")
    rounds = len({x.round for x in report.rates})
    staged = [(f"{x.process} sustained" + (f" r{x.round}" if rounds > 1 else ""), x.stages_ms)
              for x in report.rates if x.stages_ms]
    staged += [(f"{x.process} @{x.offered_rate:g}", x.stages_ms) for x in report.latencies
               if x.stages_ms]
    if staged:
        lines += ["", "worker batches (from its /metrics): mean size, mean ms per batch by stage",
                  f"  {'phase':<20}{'batches':>8}{'size':>7}{'decode+store':>13}{'classify':>9}"
                  f"{'publish':>8}{'mark+ack':>9}{'total':>7}"]
        for name, st in staged:
            lines.append(f"  {name:<20}{st['batches']:>8.0f}{st['mean_size']:>7.1f}"
                         f"{st['decode_store']:>13.1f}{st['classify']:>9.1f}{st['publish']:>8.1f}"
                         f"{st['mark_ack']:>9.1f}{st['total']:>7.1f}")
    lines += [f"ERROR: {e}" for e in report.errors]
    return "\n".join(lines)


def _no_nan(value: Any) -> Any:
    """NaN (no data) as null, so that the JSON is strict."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Create the vhost, run everything, always clean up, print the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000,
                        help="pre-filled messages for the sustained rate (default 20000)")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="seconds of offered load per latency rate (default 20)")
    parser.add_argument("--rates", default="200,1000", help="offered rates, msg/s")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="drain passthrough then worker N times, alternating; the ratio "
                             "printed is the median of the rounds (default 1)")
    parser.add_argument("--models-dir", type=Path,
                        help="default ./models when it has a promoted version")
    parser.add_argument("--corpus", type=Path, default=ROOT / "models/corpus/corpus.jsonl")
    parser.add_argument("--no-passthrough-latency", action="store_true",
                        help="skip the latency runs of the passthrough")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="first wait up to this long for other processes to go quiet")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    args.models_dir = resolve_models_dir(args.models_dir)
    quiet_deadline, quiet = time.monotonic() + args.wait_quiet, 0
    while time.monotonic() < quiet_deadline and quiet < 5:  # 5 quiet seconds in a row
        quiet = quiet + 1 if others_now() <= NOISY_OTHERS_PCT else 0
        if not quiet:
            log("other processes are busy; waiting for a quiet machine")
            time.sleep(4)

    def terminate(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    vhost = f"triage-bench-{os.getpid()}"
    url = BROKER + urllib.parse.quote(vhost, safe="")
    report = Report(machine=machine_info(args.models_dir))
    children = Children()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="triage-bench-") as tmp:
        try:
            rabbitmqctl("add_vhost", vhost)
            rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
            log(f"vhost {vhost}, work dir {tmp}")
            asyncio.run(run(args, url, Path(tmp), children, report))
        except (Exception, KeyboardInterrupt) as exc:
            why = ("interrupted (SIGINT or SIGTERM)" if isinstance(exc, KeyboardInterrupt)
                   else f"{type(exc).__name__}: {exc}")
            report.errors.append(why)
            log(f"failed: {why}")
        finally:
            children.stop_all()
            try:
                rabbitmqctl("delete_vhost", vhost)
            except Exception as exc:
                report.errors.append(f"could not delete vhost {vhost}: {exc}")
    report.machine["elapsed_s"] = round(time.monotonic() - started, 1)
    if args.json:
        print(json.dumps(_no_nan(asdict(report)), indent=2))
    else:
        print(format_table(report, args.messages))
        print(f"(run took {report.machine['elapsed_s']:.0f} s)")
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
