"""Run the chaos scenarios and print their figures.

    .venv/bin/python -m tests.chaos [--profile short|long] [--scenario NAME ...] [--seed N]
                                    [--json FILE] [--wait-quiet SECONDS]

Needs RabbitMQ on 127.0.0.1:5672 with ``rabbitmqctl`` (every scenario gets its own vhost),
``rabbitmq-server`` for the broker-restart scenario (a private node on free ports) and the
PostgreSQL server binaries for the PostgreSQL scenario (a private cluster). Progress goes to
stderr, the table to stdout; the exit status is 1 when any check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tests.chaos.harness import Broker, ChaosError, Figures, log, wait_quiet
from tests.chaos.scenarios import NOISY_OTHERS_PCT, PROFILES, SCENARIOS, Unavailable

COLUMNS = (("scenario", 20), ("sent", 7), ("lost", 5), ("dupl.", 6), ("unexp.", 7),
           ("dead", 5), ("redeliv.", 9), ("secs", 6), ("result", 7))


def row(fig: Figures) -> str:
    """One line of the table."""
    values = (fig.scenario, fig.sent, fig.lost, fig.duplicated, fig.unexpected,
              fig.dead_lettered, fig.redelivered_same_ticket, f"{fig.seconds:.0f}",
              "ok" if fig.passed else "FAILED")
    return "".join(f"{v!s:<{w}}" if i == 0 else f"{v!s:>{w}}"
                   for i, ((_, w), v) in enumerate(zip(COLUMNS, values, strict=True)))


def table(results: Sequence[Figures | tuple[str, str]], profile: str) -> str:
    """The figures of every scenario, then each one's summary and failed checks."""
    head = "".join(f"{n:<{w}}" if i == 0 else f"{n:>{w}}" for i, (n, w) in enumerate(COLUMNS))
    lines = [f"chaos suite, profile {profile} (dupl. = same message id with two ticket ids or "
             "two store rows; redeliv. = a ticket delivered again with the same ticket_id)",
             head]
    notes = []
    for result in results:
        if isinstance(result, Figures):
            lines.append(row(result))
            notes.append(f"  {result.scenario}: {result.details.get('summary', '')}")
            notes += [f"    FAILED: {name}" for name in result.failed_checks()]
        else:
            name, why = result
            lines.append(f"{name:<20}  {why}")
    return "\n".join([*lines, "", *notes])


async def run_all(names: Sequence[str], profile: str, seed: int
                  ) -> list[Figures | tuple[str, str]]:
    """Run the scenarios one after the other; a scenario that cannot run says why."""
    results: list[Figures | tuple[str, str]] = []
    for number, name in enumerate(names):
        log(f"scenario {name} ({profile})")
        try:
            fig = await SCENARIOS[name](PROFILES[profile], seed + number)
        except Unavailable as exc:
            results.append((name, f"skipped: {exc}"))
            continue
        except ChaosError as exc:
            results.append((name, f"ERROR: {exc}"))
            continue
        results.append(fig)
        log(f"scenario {name}: {'ok' if fig.passed else 'FAILED ' + str(fig.failed_checks())}"
            f" in {fig.seconds:.0f} s")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, run, print the table (and the JSON)."""
    parser = argparse.ArgumentParser(prog="python -m tests.chaos",
                                     description="chaos scenarios against real workers")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="short")
    parser.add_argument("--scenario", action="append", choices=list(SCENARIOS),
                        help="run only this scenario (repeatable; default: all)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="first wait up to this long for other processes to go quiet "
                             "(the poison scenario's throughput needs a quiet machine)")
    args = parser.parse_args(argv)
    if not Broker.available():
        print("RabbitMQ does not answer on 127.0.0.1:5672 (or rabbitmqctl is missing)",
              file=sys.stderr)
        return 2
    names = args.scenario or list(SCENARIOS)
    if args.wait_quiet and not wait_quiet(args.wait_quiet, NOISY_OTHERS_PCT):
        log("the machine did not go quiet; running anyway")
    started = time.monotonic()
    results = asyncio.run(run_all(names, args.profile, args.seed))
    print(table(results, args.profile))
    print(f"(run took {time.monotonic() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(
            [r.as_dict() if isinstance(r, Figures) else {"scenario": r[0], "error": r[1]}
             for r in results], indent=2, default=str))
    errors = [r for r in results if not isinstance(r, Figures) and r[1].startswith("ERROR")]
    failed = [r for r in results if isinstance(r, Figures) and not r.passed]
    return 1 if errors or failed else 0


if __name__ == "__main__":
    sys.exit(main())
