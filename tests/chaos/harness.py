"""The chaos harness: real ``triage worker`` processes, a real RabbitMQ, every message id counted.

A :class:`Run` is one scenario's private world: its own RabbitMQ vhost (on the shared broker,
or on a :class:`PrivateBroker` the scenario may restart), a temporary directory, worker
subprocesses started with ``TRIAGE_*`` settings, a :class:`Publisher` that sends inbound
messages with unique ids and retries each one until the broker confirms it, and a
:class:`Collector` that consumes every contact-centre queue and the dead-letter queue and
records, per message id, each ticket delivery (ticket id, queue) and each dead letter (reason,
detail, headers). :func:`account` turns that and the ticket store into a scenario's figures:

- **lost**: a confirmed inbound message with neither a ticket nor a dead letter;
- **duplicated**: a message id with two different ticket ids (or not the derived one), or with
  two rows in the store;
- **unexpected**: a ticket or dead letter nobody sent, a good message dead-lettered, a poison
  one ticketed, a dead letter with the wrong reason, a ticket in a queue it does not name;
- **dead-lettered**: dead letters received.

A ticket delivered twice with the same ticket id (at least once, after a crash) is not a
duplicate: it is reported as ``redelivered_same_ticket``. Every inbound message carries its
id in the header ``x-chaos-id`` (dead letters keep the original headers), so a body that is
not even JSON is counted too. Nothing here prints message text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import aio_pika
import aiohttp
import orjson
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
)
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.procstat import machine_busy_seconds, process_cpu_seconds
from triage import config
from triage.broker import declare, persistent
from triage.config import HEADER_DETAIL, HEADER_REASON, Settings
from triage.schema import ticket_id

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "models" / "corpus" / "corpus.jsonl"
CHAOS_ID = "x-chaos-id"
TICKET = "ticket"
PLATFORMS = ("x", "facebook", "instagram")
KINDS = ("mention", "reply", "comment", "dm")
ACCOUNTS = (("@NorthShiresPolice", "force"), ("@SouthvaleConstab", "force"),
            ("@WestvaleNPT_Central", "neighbourhood"), ("@PCJordanBeat", "officer"))
#: The five kinds of bad input, each dead-lettered with this reason.
POISON_KINDS = ("not_json", "schema_invalid", "empty_text", "too_large",
                "unknown_schema_version")
#: Client-library loggers silenced in the harness process during a run.
QUIET_LOGGERS = ("aiormq", "aio_pika", "asyncio")
#: Keep the temporary directory (worker logs, store) of every run when set.
KEEP = bool(os.environ.get("TRIAGE_CHAOS_KEEP"))


class ChaosError(RuntimeError):
    """The harness could not do what a scenario asked (not a finding about the worker)."""


def log(text: str) -> None:
    """Progress on stderr (never message text)."""
    print(f"[chaos {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:
    """In a child: get SIGTERM if the harness dies (Linux), so nothing is left running."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _run(argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 60.0,
         what: str = "") -> str:
    """Run a command; its stdout, or :class:`ChaosError` with the end of its stderr."""
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                          env=dict(env) if env is not None else None)
    if done.returncode != 0:
        raise ChaosError(f"{what or argv[0]} failed ({done.returncode}): "
                         f"{(done.stderr or done.stdout).strip()[-600:]}")
    return done.stdout


# --- brokers and databases ------------------------------------------------------------------

class Broker:
    """The shared RabbitMQ (port 5672), used only through vhosts of the harness's own."""

    name = "shared"

    def __init__(self, port: int = 5672) -> None:
        self.port = port

    def ctl_argv(self) -> list[str]:
        """The ``rabbitmqctl`` command for this node."""
        return ["rabbitmqctl"]

    def ctl_env(self) -> dict[str, str] | None:
        """Environment of ``rabbitmqctl`` (None: inherit)."""
        return None

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """Run one ``rabbitmqctl`` command on this node."""
        return _run([*self.ctl_argv(), *args], env=self.ctl_env(), timeout=timeout,
                    what=f"rabbitmqctl {' '.join(args)}")

    def url(self, vhost: str) -> str:
        """AMQP URL of ``vhost`` on this node."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{urllib.parse.quote(vhost, safe='')}"

    @staticmethod
    def available() -> bool:
        """True when the shared broker answers and ``rabbitmqctl`` is installed."""
        return answers(5672) and shutil.which("rabbitmqctl") is not None

    def close(self) -> None:
        """Nothing to do for the shared broker."""


def _rabbit_script(name: str) -> str | None:
    direct = Path("/usr/lib/rabbitmq/bin") / name  # Debian: the scripts behind the wrapper
    if direct.exists():
        return str(direct)
    return shutil.which(name)


class PrivateBroker(Broker):
    """A RabbitMQ node of the harness's own: own name, ports, data, logs and Erlang cookie.

    Restarting it disturbs nobody else; :meth:`close` always stops it.
    """

    name = "private"

    def __init__(self, workdir: Path) -> None:
        super().__init__(free_port())
        self.dist_port = free_port()
        self.node = f"triage-chaos-{os.getpid()}-{uuid.uuid4().hex[:4]}@localhost"
        self.home = workdir / "rabbit"
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\nloopback_users.guest = true\n")
        (self.home / "enabled_plugins").write_text("[].\n")
        (self.home / "rabbitmq-env.conf").write_text("")
        self.pid_file = self.home / "pid"
        self.started = False

    @staticmethod
    def installed() -> bool:
        """True when ``rabbitmq-server`` and ``rabbitmqctl`` are installed."""
        return bool(_rabbit_script("rabbitmq-server") and _rabbit_script("rabbitmqctl"))

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        home = self.home
        env.update(
            HOME=str(home), RABBITMQ_NODENAME=self.node, RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_CONF_ENV_FILE=str(home / "rabbitmq-env.conf"),
            RABBITMQ_CONFIG_FILE=str(home / "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(home / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(home / "mnesia"), RABBITMQ_LOG_BASE=str(home / "log"),
            RABBITMQ_PID_FILE=str(self.pid_file), ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}")
        return env

    def ctl_argv(self) -> list[str]:
        """``rabbitmqctl -n NODE``."""
        return [_rabbit_script("rabbitmqctl") or "rabbitmqctl", "-n", self.node]

    def ctl_env(self) -> dict[str, str]:
        """The node's environment (its cookie is in its own HOME)."""
        return self._env()

    def start(self, timeout: float = 120.0) -> None:
        """Start the node detached and wait until AMQP answers."""
        server = _rabbit_script("rabbitmq-server")
        if server is None:
            raise ChaosError("rabbitmq-server is not installed")
        _run([server, "-detached"], env=self._env(), timeout=60, what="rabbitmq-server")
        self.started = True
        self.wait_up(timeout)

    def wait_up(self, timeout: float = 120.0) -> None:
        """Wait until the node's AMQP port accepts connections and its app runs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if answers(self.port):
                with contextlib.suppress(ChaosError, subprocess.TimeoutExpired):
                    self.ctl("await_startup", "--timeout", "10", timeout=30)
                    return
            time.sleep(0.1)
        raise ChaosError(f"private RabbitMQ {self.node} did not start within {timeout:.0f} s:\n"
                         + self.log_tail())

    def wait_down(self, timeout: float = 60.0) -> None:
        """Wait until the AMQP port is closed."""
        deadline = time.monotonic() + timeout
        while answers(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def pid(self) -> int | None:
        """The Erlang VM's OS pid, from the pid file."""
        with contextlib.suppress(OSError, ValueError):
            return int(self.pid_file.read_text().strip())
        return None

    def restart(self, mode: str, down_seconds: float) -> tuple[float, float]:
        """Take the broker down (``app``: stop_app; ``node``: stop the node; ``kill``: SIGKILL
        the VM), wait ``down_seconds``, bring it back; return (down_at, back_at) wall times,
        ``back_at`` being when its AMQP port accepts connections again."""
        if mode == "app":
            down_at = time.time()
            self.ctl("stop_app")
        elif mode == "node":
            down_at = time.time()
            self.ctl("stop", timeout=120)
            self.wait_down()
        elif mode == "kill":
            pid = self.pid()
            if pid is None:
                raise ChaosError("no pid file for the private broker")
            down_at = time.time()
            os.kill(pid, signal.SIGKILL)
            self.wait_down()
        else:
            raise ValueError(f"unknown restart mode {mode!r}")
        time.sleep(max(0.0, down_at + down_seconds - time.time()))
        starting = threading.Thread(target=self.ctl, args=("start_app",),
                                    kwargs={"timeout": 120}, daemon=True)
        if mode == "app":
            starting.start()
        else:
            server = _rabbit_script("rabbitmq-server") or "rabbitmq-server"
            _run([server, "-detached"], env=self._env(), timeout=60, what="rabbitmq-server")
        deadline = time.monotonic() + 120
        while not answers(self.port) and time.monotonic() < deadline:
            time.sleep(0.02)
        back_at = time.time()
        if mode == "app":
            starting.join(120)
        self.wait_up()
        return down_at, back_at

    def log_tail(self, lines: int = 20) -> str:
        """The end of the node's log."""
        text = ""
        for path in sorted((self.home / "log").glob("*.log")):
            with contextlib.suppress(OSError):
                text += "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        return text

    def close(self) -> None:
        """Stop the node (or kill its VM if it will not stop)."""
        if not self.started:
            return
        try:
            self.ctl("stop", timeout=60)
        except (ChaosError, subprocess.TimeoutExpired):
            pid = self.pid()
            if pid is not None:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        self.started = False


def postgres_bin() -> Path | None:
    """The newest PostgreSQL server binaries (``initdb``, ``pg_ctl``) installed, if any."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                   else 0)
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PrivatePostgres:
    """A PostgreSQL cluster of the harness's own, on a free port, in a temporary directory.

    Run as the ``postgres`` user when the harness is root (``initdb`` refuses root); stopping
    it disturbs nobody else. :meth:`close` stops it and removes its files.
    """

    def __init__(self) -> None:
        binaries = postgres_bin()
        if binaries is None:
            raise ChaosError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        self.bin = binaries
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="triage-chaos-pg-"))
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.dir, user="postgres")
        self.data = self.dir / "data"
        self.running = False

    @staticmethod
    def installed() -> bool:
        """True when ``initdb`` and ``pg_ctl`` are installed."""
        return postgres_bin() is not None

    def _pg(self, tool: str, *args: str, timeout: float = 90.0) -> str:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_root else []
        return _run([*prefix, str(self.bin / tool), *args], timeout=timeout, what=tool)

    @property
    def url(self) -> str:
        """The cluster's ``postgres`` database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """Create the cluster on first use, then start it and wait until it accepts work."""
        if not self.data.exists():
            self._pg("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                     "-E", "UTF8", "--no-sync")
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        self._pg("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"),
                 "-w", "-t", "60", "start")
        self.running = True

    def stop(self, mode: str = "immediate") -> None:
        """Stop the cluster (``immediate`` is a crash as far as clients can tell)."""
        self._pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")
        self.running = False

    def close(self) -> None:
        """Stop the cluster if it runs, and remove its files."""
        if self.running:
            with contextlib.suppress(ChaosError, subprocess.TimeoutExpired):
                self.stop("fast")
        shutil.rmtree(self.dir, ignore_errors=True)


# --- messages -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outbound:
    """One inbound message to send: its id, platform, body and the outcomes allowed for it.

    ``expect`` holds ``"ticket"`` and/or dead-letter reasons.
    """

    id: str
    platform: str
    body: bytes
    expect: frozenset[str]


_TEXTS: list[str] = []


def corpus_texts() -> list[str]:
    """Texts of the labelled corpus (loaded once)."""
    if not _TEXTS:
        for line in CORPUS.read_bytes().splitlines():
            if line.strip():
                text = orjson.loads(line).get("text")
                if isinstance(text, str) and text.strip() and len(text) < 5000:
                    _TEXTS.append(text)
    if not _TEXTS:
        raise ChaosError(f"no usable texts in {CORPUS}")
    return _TEXTS


def inbound(message_id: str, text: str, rnd: random.Random, *, platform: str | None = None,
            author: dict[str, Any] | None = None) -> dict[str, Any]:
    """An inbound message v1 created now (so that no SLA is breached during a run)."""
    handle, account_type = ACCOUNTS[rnd.randrange(len(ACCOUNTS))]
    user = rnd.randrange(1_000_000)
    return {"version": 1, "id": message_id, "platform": platform or rnd.choice(PLATFORMS),
            "kind": rnd.choice(KINDS), "text": text,
            "created_at": datetime.now(UTC).isoformat(),
            "author": author or {"id": f"user-{user}", "handle": f"@member{user}"},
            "account": {"handle": handle, "type": account_type}, "lang": "en"}


def good_messages(tag: str, count: int, seed: int, *, start: int = 0) -> list[Outbound]:
    """``count`` valid messages with unique ids ``tag-g-nnnnnn``."""
    rnd = random.Random(seed)
    texts = corpus_texts()
    out = []
    for i in range(start, start + count):
        data = inbound(f"{tag}-g-{i:06d}", texts[rnd.randrange(len(texts))], rnd)
        out.append(Outbound(data["id"], data["platform"], orjson.dumps(data),
                            frozenset({TICKET})))
    return out


def poison_message(message_id: str, kind: str, rnd: random.Random) -> Outbound:
    """One bad message of ``kind`` (one of :data:`POISON_KINDS`), dead-lettered with it."""
    text = corpus_texts()[rnd.randrange(len(corpus_texts()))]
    data = inbound(message_id, text, rnd)
    if kind == "not_json":
        body = b'{"id": "' + message_id.encode() + b'", "text": ' + text.encode()[:40]
    elif kind == "schema_invalid":
        data[rnd.choice(["kind", "account"])] = "carrier-pigeon"
        body = orjson.dumps(data)
    elif kind == "empty_text":
        data["text"] = rnd.choice(["", "   ", "\n\t"])
        body = orjson.dumps(data)
    elif kind == "too_large":
        data["text"] = (text + " ") * (70_000 // (len(text) + 1) + 1)
        body = orjson.dumps(data)
    elif kind == "unknown_schema_version":
        data["version"] = rnd.choice([2, 3, 99])
        body = orjson.dumps(data)
    else:
        raise ValueError(f"unknown poison kind {kind!r}")
    return Outbound(message_id, data["platform"], body, frozenset({kind}))


def with_poison(tag: str, count: int, share: float, seed: int) -> list[Outbound]:
    """``count`` messages of which ``share`` are bad, every kind equally, at random places."""
    rnd = random.Random(seed)
    bad = round(count * share)
    messages = good_messages(tag, count - bad, seed + 1)
    poison = [poison_message(f"{tag}-p-{i:06d}", POISON_KINDS[i % len(POISON_KINDS)], rnd)
              for i in range(bad)]
    for item in poison:
        messages.insert(rnd.randrange(len(messages) + 1), item)
    return messages


# --- publishing -----------------------------------------------------------------------------

class Publisher:
    """Sends inbound messages with publisher confirms, retrying each until it is confirmed.

    Its own connection is re-opened after a failure (a broker restart), so that a message
    counts as sent only once the broker has confirmed it. A retried message may reach the
    queue twice; the worker's store suppresses the second copy.
    """

    def __init__(self, url: str, exchange: str, *, give_up_after: float = 180.0) -> None:
        self.url = url
        self.exchange_name = exchange
        self.give_up_after = give_up_after
        self.confirmed: dict[str, float] = {}
        self.failed_attempts = 0
        self.gave_up: list[str] = []
        self._connection: AbstractConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._generation = 0
        self._lock = asyncio.Lock()

    async def _open(self) -> tuple[int, AbstractExchange]:
        async with self._lock:
            if self._exchange is not None and self._connection is not None \
                    and not self._connection.is_closed:
                return self._generation, self._exchange
            if self._connection is not None:
                with contextlib.suppress(Exception):
                    await self._connection.close()
            self._connection = await aio_pika.connect(
                self.url, timeout=5, client_properties={"connection_name": "chaos-publisher"})
            channel = await self._connection.channel(publisher_confirms=True,
                                                     on_return_raises=True)
            self._exchange = await channel.get_exchange(self.exchange_name, ensure=False)
            self._generation += 1
            return self._generation, self._exchange

    async def send(self, item: Outbound) -> bool:
        """Publish one message until the broker confirms it (or give up); True if confirmed."""
        deadline = time.monotonic() + self.give_up_after
        while True:
            generation = -1
            try:
                generation, exchange = await self._open()
                await exchange.publish(
                    persistent(item.body, message_id=item.id, headers={CHAOS_ID: item.id}),
                    routing_key="", mandatory=True, timeout=10)
                self.confirmed[item.id] = time.time()
                return True
            except Exception:
                self.failed_attempts += 1
                if generation == self._generation:
                    self._exchange = None  # open a new connection on the next attempt
                if time.monotonic() > deadline:
                    self.gave_up.append(item.id)
                    return False
                await asyncio.sleep(0.5)

    async def bulk(self, items: Sequence[Outbound], window: int = 500) -> None:
        """Publish everything, ``window`` messages awaiting confirms at a time."""
        for start in range(0, len(items), window):
            await asyncio.gather(*(self.send(i) for i in items[start:start + window]))

    async def paced(self, items: Sequence[Outbound], rate: float) -> float:
        """Publish at ``rate`` msg/s by schedule (message i is due at start + i/rate); return
        the seconds the schedule took. Confirms are awaited concurrently."""
        tasks: set[asyncio.Task[bool]] = set()
        start = time.monotonic()
        for i, item in enumerate(items):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self.send(item))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        took = time.monotonic() - start
        if tasks:
            await asyncio.gather(*tasks)
        return took

    async def close(self) -> None:
        """Close the connection."""
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()


# --- collecting -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Seen:
    """One ticket delivery to a contact-centre queue."""

    ticket_id: str
    platform: str
    queue: str
    named_queue: str
    routed_at: float
    arrived: float
    model_version: str


@dataclass(frozen=True)
class Dead:
    """One dead letter."""

    reason: str
    detail: str
    headers: dict[str, str]
    arrived: float


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


class Collector:
    """Consumes every contact-centre queue and the dead-letter queue; records each delivery.

    It reconnects by itself after losing its connection; a delivery the broker redelivers to
    it (``redelivered`` set, already recorded) is counted in ``collector_redeliveries``, not as
    a second ticket delivery.
    """

    def __init__(self, url: str, settings: Settings, queues: Iterable[str] | None = None
                 ) -> None:
        self.url = url
        self.settings = settings
        self.queues = list(queues if queues is not None else settings.ticket_queues)
        self.tickets: dict[str, list[Seen]] = {}
        self.dead: dict[str, list[Dead]] = {}
        self.stray_dead: list[Dead] = []
        self.escalations = 0
        self.unreadable = 0
        self.collector_redeliveries = 0
        self.resolved: set[str] = set()
        self.last_arrival = time.monotonic()
        self.reconnects = 0
        self._seen: set[tuple[str, str, str]] = set()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._connection: AbstractConnection | None = None
        self._attached = asyncio.Event()

    async def start(self) -> None:
        """Start consuming; return once every consumer is attached."""
        self._task = asyncio.create_task(self._supervise(), name="chaos-collector")
        await asyncio.wait_for(self._attached.wait(), 60)

    async def consume_also(self, queue: str) -> None:
        """Add a queue (e.g. one re-declared after it was deleted) and re-attach."""
        if queue not in self.queues:
            self.queues.append(queue)
        self._attached.clear()
        if self._connection is not None:
            await self._connection.close()
        await asyncio.wait_for(self._attached.wait(), 60)

    async def _supervise(self) -> None:
        while not self._stopping:
            closed = asyncio.Event()
            try:
                self._connection = await aio_pika.connect(
                    self.url, timeout=5,
                    client_properties={"connection_name": "chaos-collector"})
                self._connection.close_callbacks.add(lambda *_, ev=closed: ev.set())
                channel = await self._connection.channel()
                await channel.set_qos(prefetch_count=1000)
                for name in self.queues:
                    queue = await channel.get_queue(name, ensure=False)
                    await queue.consume(self._ticket_handler(name))
                dead = await channel.get_queue(self.settings.dead_queue, ensure=False)
                await dead.consume(self._on_dead)
                self._attached.set()
                await closed.wait()
            except asyncio.CancelledError:
                raise
            except Exception:  # the broker is down or going down: try again shortly
                if self._connection is not None:
                    with contextlib.suppress(Exception):
                        await self._connection.close()
            if not self._stopping:
                self.reconnects += 1
                await asyncio.sleep(0.5)

    def _first_time(self, key: tuple[str, str, str], message: AbstractIncomingMessage) -> bool:
        if message.redelivered and key in self._seen:
            self.collector_redeliveries += 1
            return False
        self._seen.add(key)
        return True

    def _ticket_handler(self, queue: str) -> Any:
        async def handler(message: AbstractIncomingMessage) -> None:
            now = time.monotonic()
            self.last_arrival = now
            try:
                body = orjson.loads(message.body)
                inner = body["message"]
                seen = Seen(ticket_id=str(body["ticket_id"]), platform=str(inner["platform"]),
                            queue=queue, named_queue=str(body.get("queue")),
                            routed_at=datetime.fromisoformat(body["routed_at"]).timestamp(),
                            arrived=time.time(), model_version=str(body.get("model_version")))
                message_id = str(inner["id"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                self.unreadable += 1
            else:
                if "escalation" in body:
                    self.escalations += 1
                elif self._first_time((queue, seen.ticket_id, "t"), message):
                    self.tickets.setdefault(message_id, []).append(seen)
                    self.resolved.add(message_id)
            with contextlib.suppress(Exception):
                await message.ack()
        return handler

    async def _on_dead(self, message: AbstractIncomingMessage) -> None:
        self.last_arrival = time.monotonic()
        headers = {k: _text(v) for k, v in (message.headers or {}).items()}
        reason = headers.get(HEADER_REASON) or headers.get("x-first-death-reason", "")
        dead = Dead(reason=reason, detail=headers.get(HEADER_DETAIL, ""), headers=headers,
                    arrived=time.time())
        message_id = headers.get(CHAOS_ID)
        if message_id is None:
            self.stray_dead.append(dead)
        elif self._first_time(("dead", message_id, reason), message):
            self.dead.setdefault(message_id, []).append(dead)
            self.resolved.add(message_id)
        with contextlib.suppress(Exception):
            await message.ack()

    def deliveries(self) -> int:
        """Ticket deliveries and dead letters recorded so far."""
        return (sum(len(v) for v in self.tickets.values())
                + sum(len(v) for v in self.dead.values()) + len(self.stray_dead))

    async def stop(self) -> None:
        """Stop consuming."""
        self._stopping = True
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


# --- the ticket store -----------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    """One ticket row of the store, as the scenario checks it."""

    platform: str
    message_id: str
    ticket_id: str
    queue: str
    published_at: float | None

    @property
    def published(self) -> bool:
        """True once the broker confirmed the ticket."""
        return self.published_at is not None


async def read_store(db_url: str) -> list[Row]:
    """Every ticket row of a SQLite file or a PostgreSQL database."""
    query = "SELECT platform, message_id, ticket_id, queue, published_at FROM tickets"
    if db_url.startswith("sqlite:///"):
        path = db_url[len("sqlite:///"):]

        def read() -> list[Row]:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)
            try:
                return [Row(*r) for r in conn.execute(query)]
            finally:
                conn.close()
        return await asyncio.to_thread(read)
    import asyncpg

    conn = await asyncpg.connect(db_url)
    try:
        return [Row(*r) for r in await conn.fetch(query)]
    finally:
        await conn.close()


# --- figures --------------------------------------------------------------------------------

@dataclass
class Figures:
    """What one scenario measured. ``checks`` are the named pass/fail conditions."""

    scenario: str
    profile: str
    sent: int = 0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    dead_lettered: int = 0
    redelivered_same_ticket: int = 0
    tickets: int = 0
    store_rows: int | None = None
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when every check holds."""
        return all(self.checks.values())

    def failed_checks(self) -> list[str]:
        """Names of the checks that do not hold."""
        return [name for name, ok in self.checks.items() if not ok]

    def as_dict(self) -> dict[str, Any]:
        """The figures as plain data (JSON-ready)."""
        return {**asdict(self), "passed": self.passed}

    def check(self, name: str, ok: bool) -> None:
        """Record one named check."""
        self.checks[name] = bool(ok)

    def basic_checks(self) -> None:
        """The four figures every scenario asserts: nothing lost, duplicated or unexpected."""
        self.check("lost == 0", self.lost == 0)
        self.check("duplicated == 0", self.duplicated == 0)
        self.check("unexpected == 0", self.unexpected == 0)


def account(fig: Figures, sent: Sequence[Outbound], publisher: Publisher,
            collector: Collector, rows: Sequence[Row] | None) -> Figures:
    """Fill the four figures (and the store check) from what was sent and what came out."""
    by_id = {o.id: o for o in sent}
    confirmed = [i for i in by_id if i in publisher.confirmed]
    fig.sent = len(confirmed)
    lost: list[str] = []
    unexpected: list[str] = []
    for message_id in confirmed:
        item = by_id[message_id]
        seen = collector.tickets.get(message_id, [])
        got = {TICKET} if seen else set()
        got |= {d.reason for d in collector.dead.get(message_id, [])}
        if not got:
            lost.append(message_id)
        elif got - item.expect or any(s.queue != s.named_queue for s in seen):
            unexpected.append(message_id)
        ids = {s.ticket_id for s in seen}
        if len(ids) > 1 or (ids and ids != {ticket_id(item.platform, item.id)}):
            fig.duplicated += 1
        fig.redelivered_same_ticket += max(0, len(seen) - 1)
    strangers = [i for i in collector.tickets if i not in by_id]
    strangers += [i for i in collector.dead if i not in by_id]
    fig.lost = len(lost)
    fig.unexpected = len(unexpected) + len(strangers) + len(collector.stray_dead) \
        + collector.unreadable
    fig.dead_lettered = sum(len(v) for v in collector.dead.values()) + len(collector.stray_dead)
    fig.tickets = sum(1 for i in confirmed if i in collector.tickets)
    fig.details.update(not_confirmed_by_broker=len(publisher.gave_up),
                       publish_retries=publisher.failed_attempts,
                       collector_redeliveries=collector.collector_redeliveries,
                       escalations=collector.escalations)
    if lost:
        fig.details["lost_sample"] = sorted(lost)[:5]
    if unexpected or strangers:
        fig.details["unexpected_sample"] = sorted(unexpected + strangers)[:5]
    if rows is not None:
        mine = [r for r in rows if r.message_id in by_id]
        per_id: dict[tuple[str, str], int] = {}
        for row in mine:
            per_id[(row.platform, row.message_id)] = per_id.get(
                (row.platform, row.message_id), 0) + 1
        doubled = sum(1 for n in per_id.values() if n > 1)
        fig.duplicated += doubled
        fig.store_rows = len(mine)
        fig.details["store_rows_duplicated"] = doubled
        fig.details["store_rows_unpublished"] = sum(
            1 for r in mine if not r.published and r.message_id in collector.tickets)
        expected_rows = {i for i in confirmed if TICKET in by_id[i].expect}
        fig.details["store_rows_missing"] = sum(
            1 for i in expected_rows if i in collector.tickets
            and (by_id[i].platform, i) not in per_id)
    return fig


# --- worker processes -----------------------------------------------------------------------

def _worker_argv() -> list[str]:
    script = Path(sys.executable).parent / "triage"
    if not script.exists():
        script = ROOT / ".venv" / "bin" / "triage"
    return [str(script), "worker"]


@dataclass
class WorkerProc:
    """One ``triage worker`` subprocess, its HTTP port and its log file."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    log_file: IO[bytes]
    started_at: float
    killed: bool = False
    exit_seconds: float | None = None

    @property
    def pid(self) -> int:
        """Its process id."""
        return self.proc.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL: no clean-up, no acks, nothing flushed."""
        self.killed = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.log_file.close()

    async def terminate(self, timeout: float) -> float | None:
        """SIGTERM and wait for the exit; seconds it took, or None (then SIGKILL)."""
        if not self.alive():
            return self.exit_seconds
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        while self.alive() and time.monotonic() - start < timeout:
            await asyncio.sleep(0.02)
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)
            self.exit_seconds = None
        else:
            self.exit_seconds = time.monotonic() - start
        self.log_file.close()
        return self.exit_seconds

    def pause(self) -> None:
        """SIGSTOP: the process stops taking anything off its socket."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        os.kill(self.proc.pid, signal.SIGCONT)

    def cpu_seconds(self) -> float:
        """User + system CPU seconds used so far (all threads), from /proc."""
        return process_cpu_seconds(self.proc.pid)

    def log_text(self) -> str:
        """Everything it wrote to stdout and stderr."""
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""

    def tail(self, lines: int = 20) -> str:
        """The end of its log (the service logs no message text)."""
        return "\n".join(self.log_text().splitlines()[-lines:])


class Run:
    """One scenario's private world; ``async with Run(name) as run``.

    It creates a vhost on ``broker`` (or starts a private broker when ``private_broker``),
    declares the topology with the default names, and on the way out stops every worker,
    the collector and the publisher, deletes the vhost, stops a private broker, and removes
    its temporary directory (kept when ``TRIAGE_CHAOS_KEEP`` is set).
    """

    def __init__(self, scenario: str, *, private_broker: bool = False,
                 models_dir: Path | None = None) -> None:
        self.scenario = scenario
        self.private = private_broker
        self.models_dir = (models_dir or ROOT / "models").resolve()
        self.tag = f"{scenario}-{uuid.uuid4().hex[:6]}"
        self.workers: list[WorkerProc] = []
        self.all_workers: list[WorkerProc] = []
        self._count = 0

    async def __aenter__(self) -> Run:
        # the harness's own connections break on purpose: keep the client libraries quiet
        self._levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.CRITICAL)
        self.tmp = Path(tempfile.mkdtemp(prefix=f"triage-chaos-{self.scenario}-"))
        self.broker: Broker = PrivateBroker(self.tmp) if self.private else Broker()
        try:
            if isinstance(self.broker, PrivateBroker):
                log(f"{self.scenario}: starting a private RabbitMQ node on port "
                    f"{self.broker.port}")
                await asyncio.to_thread(self.broker.start)
            self.vhost = f"triage-chaos-{self.tag}"
            await asyncio.to_thread(self.broker.ctl, "add_vhost", self.vhost)
            await asyncio.to_thread(self.broker.ctl, "set_permissions", "-p", self.vhost,
                                    "guest", ".*", ".*", ".*")
            self.url = self.broker.url(self.vhost)
            self.settings = config.load(amqp_url=self.url, models_dir=self.models_dir)
            await self.declare()
        except BaseException:
            await asyncio.to_thread(self.broker.close)
            shutil.rmtree(self.tmp, ignore_errors=True)
            for name, level in self._levels.items():
                logging.getLogger(name).setLevel(level)
            raise
        self.collector = Collector(self.url, self.settings)
        self.publisher = Publisher(self.url, self.settings.inbound_exchange)
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for worker in list(self.workers):
            with contextlib.suppress(Exception):
                await worker.terminate(30)
        await self.collector.stop()
        await self.publisher.close()
        await self.http.close()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.broker.ctl, "delete_vhost", self.vhost)
        await asyncio.to_thread(self.broker.close)
        if KEEP:
            log(f"{self.scenario}: kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)

    async def declare(self) -> None:
        """Declare the service's topology in the vhost (idempotent, as the worker does)."""
        connection = await aio_pika.connect(self.url, timeout=10)
        try:
            await declare(await connection.channel(), self.settings)
        finally:
            await connection.close()

    async def channel(self) -> tuple[AbstractConnection, AbstractChannel]:
        """A fresh connection and channel to the vhost (close the connection after use)."""
        connection = await aio_pika.connect(self.url, timeout=10)
        return connection, await connection.channel()

    async def depth(self, queue: str) -> int:
        """Messages ready in a queue (passive declare)."""
        connection, channel = await self.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True)
            return int(declared.declaration_result.message_count or 0)
        finally:
            await connection.close()

    async def consumers(self) -> dict[str, int]:
        """Consumers attached to each queue of the vhost, as the broker's channels see them.

        (``list_consumers``, not ``list_queues ... consumers``: for a quorum queue the latter
        comes from statistics emitted every few seconds and lags, showing 0 for a while.)
        """
        out = await asyncio.to_thread(self.broker.ctl, "list_consumers", "-p", self.vhost,
                                      "--no-table-headers", "--quiet", "queue_name")
        found: dict[str, int] = {}
        for line in out.splitlines():
            if line.strip():
                found[line.strip()] = found.get(line.strip(), 0) + 1
        return found

    def sqlite_url(self, name: str = "tickets.db") -> str:
        """A SQLite store in the run's directory."""
        return f"sqlite:///{self.tmp / name}"

    def start_worker(self, db_url: str, **settings: str | int | float) -> WorkerProc:
        """Start ``triage worker`` with the run's broker, ``db_url`` and extra settings."""
        self._count += 1
        name = f"w{self._count}"
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
        env.update(TRIAGE_AMQP_URL=self.url, TRIAGE_DB_URL=db_url,
                   TRIAGE_HTTP_HOST="127.0.0.1", TRIAGE_HTTP_PORT=str(port),
                   TRIAGE_MODELS_DIR=str(self.models_dir))
        env.update({f"TRIAGE_{k.upper()}": str(v) for k, v in settings.items()})
        log_path = self.tmp / f"{name}.log"
        log_file = log_path.open("wb")
        proc = subprocess.Popen(_worker_argv(), env=env, cwd=self.tmp, stdout=log_file,
                                stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        worker = WorkerProc(name, proc, port, log_path, log_file, time.time())
        self.workers.append(worker)
        self.all_workers.append(worker)
        return worker

    def forget(self, worker: WorkerProc) -> None:
        """No longer count ``worker`` among the running ones."""
        if worker in self.workers:
            self.workers.remove(worker)

    async def ready(self, worker: WorkerProc) -> bool:
        """True when the worker's /readyz answers 200."""
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
            async with self.http.get(f"http://127.0.0.1:{worker.port}/readyz") as response:
                return response.status == 200
        return False

    async def wait_ready(self, worker: WorkerProc, timeout: float = 90.0) -> float:
        """Wait for /readyz 200; seconds since the worker started. Raises if it exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not worker.alive():
                raise ChaosError(f"{worker.name} exited ({worker.proc.returncode}) before it "
                                 f"was ready:\n{worker.tail()}")
            if await self.ready(worker):
                return time.time() - worker.started_at
            await asyncio.sleep(0.1)
        raise ChaosError(f"{worker.name} not ready within {timeout:.0f} s:\n{worker.tail()}")

    async def metrics(self, worker: WorkerProc) -> str:
        """The worker's /metrics text."""
        async with self.http.get(f"http://127.0.0.1:{worker.port}/metrics") as response:
            return await response.text()

    async def settle(self, ids: Collection[str], *, timeout: float, quiet: float = 2.0
                     ) -> bool:
        """Wait until every id has an outcome and nothing arrived for ``quiet`` seconds.

        False when ``timeout`` passed first (what is missing is then lost). Raises if a
        worker the run did not stop has exited.
        """
        wanted = set(ids)
        deadline = time.monotonic() + timeout
        while True:
            for worker in self.workers:
                if not worker.alive() and not worker.killed:
                    raise ChaosError(f"{worker.name} exited ({worker.proc.returncode}):\n"
                                     f"{worker.tail()}")
            complete = len(wanted & self.collector.resolved) == len(wanted)
            if complete and time.monotonic() - self.collector.last_arrival >= quiet:
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.2)

    async def stop_workers(self, timeout: float = 40.0) -> list[float | None]:
        """SIGTERM every running worker; their exit seconds."""
        took = await asyncio.gather(*(w.terminate(timeout) for w in self.workers))
        self.workers.clear()
        return list(took)


class ReadyWatch:
    """Polls a worker's /readyz every ``interval`` seconds and records each change."""

    def __init__(self, run: Run, worker: WorkerProc, interval: float = 0.1) -> None:
        self.run = run
        self.worker = worker
        self.interval = interval
        self.changes: list[tuple[float, bool]] = []
        self._task = asyncio.create_task(self._poll(), name="chaos-readywatch")

    async def _poll(self) -> None:
        last: bool | None = None
        while True:
            ok = await self.run.ready(self.worker)
            if ok != last:
                self.changes.append((time.time(), ok))
                last = ok
            await asyncio.sleep(self.interval)

    def first(self, ready: bool, after: float) -> float | None:
        """Wall time of the first change to ``ready`` at or after ``after``."""
        for at, ok in self.changes:
            if at >= after and ok == ready:
                return at
        return None

    def recovered(self, down_at: float) -> float | None:
        """Wall time of the first 200 after the first 503 that followed ``down_at``."""
        failed = self.first(False, down_at)
        return None if failed is None else self.first(True, failed)

    def not_ready_between(self, start: float, end: float) -> bool:
        """True when /readyz was 503 (or did not answer) at some point in [start, end]."""
        state = None
        for at, ok in self.changes:
            if at <= start:
                state = ok
            elif at <= end and not ok:
                return True
        return state is False

    async def stop(self) -> None:
        """Stop polling."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class SqliteLock:
    """Another process holding ``BEGIN EXCLUSIVE`` on a SQLite file for ``seconds``."""

    SCRIPT = ("import sqlite3, sys, time\n"
              "conn = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)\n"
              "conn.execute('BEGIN EXCLUSIVE')\n"
              "print('locked', time.time(), flush=True)\n"
              "time.sleep(float(sys.argv[2]))\n"
              "conn.execute('ROLLBACK')\n"
              "print('released', time.time(), flush=True)\n")

    def __init__(self, path: Path, seconds: float) -> None:
        self.path = path
        self.seconds = seconds
        self.locked_at = 0.0
        self.released_at = 0.0

    async def hold(self) -> tuple[float, float]:
        """Take the lock, hold it, release it; return (locked_at, released_at) wall times."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", self.SCRIPT, str(self.path), str(self.seconds),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        for line in out.decode().splitlines():
            word, _, at = line.partition(" ")
            if word == "locked":
                self.locked_at = float(at)
            elif word == "released":
                self.released_at = float(at)
        if proc.returncode != 0 or not self.released_at:
            raise ChaosError(f"the SQLite lock holder failed: {err.decode()[-400:]}")
        return self.locked_at, self.released_at


# --- CPU ------------------------------------------------------------------------------------

def beam_pids() -> list[int]:
    """Every RabbitMQ (Erlang VM) process on the machine."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "beam.smp":
                    found.append(int(entry.name))
    return found


class CpuMeter:
    """CPU used during an interval by a worker, the brokers, the harness and everything else
    (% of one core): other processes on a shared machine make wall-clock figures void."""

    def __init__(self, worker: WorkerProc) -> None:
        self.worker = worker
        self.brokers = beam_pids()
        self.start = self._read()

    def _read(self) -> tuple[float, float, float, float, float]:
        return (time.monotonic(), machine_busy_seconds(), self.worker.cpu_seconds(),
                sum(process_cpu_seconds(p) for p in self.brokers),
                process_cpu_seconds(os.getpid()))

    def shares(self) -> dict[str, float]:
        """Shares since the meter was made."""
        d = [b - a for a, b in zip(self.start, self._read(), strict=True)]
        seconds = max(1e-9, d[0])
        others = max(0.0, d[1] - d[2] - d[3] - d[4])
        return {"worker": round(100 * d[2] / seconds, 1), "broker": round(100 * d[3] / seconds, 1),
                "harness": round(100 * d[4] / seconds, 1),
                "others": round(100 * others / seconds, 1)}


def others_busy_pct(seconds: float = 1.0) -> float:
    """CPU used by processes other than the brokers and this one, % of one core."""
    brokers = beam_pids()

    def read() -> tuple[float, float]:
        mine = process_cpu_seconds(os.getpid()) + sum(process_cpu_seconds(p) for p in brokers)
        return machine_busy_seconds(), mine

    busy0, mine0 = read()
    time.sleep(seconds)
    busy1, mine1 = read()
    return max(0.0, 100 * ((busy1 - busy0) - (mine1 - mine0)) / seconds)


def wait_quiet(limit: float, threshold: float, quiet_for: int = 5) -> bool:
    """Wait up to ``limit`` seconds for ``quiet_for`` seconds in a row in which other processes
    use at most ``threshold`` % of a core; True if that happened."""
    deadline = time.monotonic() + limit
    quiet = 0
    while time.monotonic() < deadline:
        busy = others_busy_pct()
        quiet = quiet + 1 if busy <= threshold else 0
        if quiet >= quiet_for:
            return True
        if quiet == 0:
            log(f"other processes use {busy:.0f}% of a core; waiting for a quiet machine")
            time.sleep(4)
    return False


# --- metrics --------------------------------------------------------------------------------

def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v
                                           for k, v in labels.items()):
                total += sample.value
    return total


def metric_labels(text: str, name: str) -> list[dict[str, str]]:
    """Label sets of the samples called ``name``."""
    return [dict(s.labels) for f in text_string_to_metric_families(text) for s in f.samples
            if s.name == name]


def series_count(text: str) -> int:
    """Number of series lines (not comments, not empty) in a /metrics text."""
    return sum(1 for line in text.splitlines() if line.strip() and not line.startswith("#"))
