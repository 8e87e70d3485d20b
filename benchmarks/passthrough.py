"""Raw passthrough: the limit of this machine for the worker's broker pattern, nothing else.

Consumes a queue and republishes each body, persistent and mandatory, with publisher confirms;
acks the inbound only after its confirm. Batched exactly like ``triage.consume.Worker``: take
what is waiting (up to ``--batch-max``, never wait to fill a batch), publish all, await the
confirms together, then ack each delivery. No decoding, no classification, no store.

    python benchmarks/passthrough.py --url amqp://... --queue bench.pt.in \
        --exchange bench.pt.out --routing-key bench.pt.out

Prints ``ready`` on stdout once consuming; stops cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage

from triage.broker import persistent, publish_confirmed


async def _handle(batch: list[AbstractIncomingMessage], exchange: AbstractExchange,
                  routing_key: str, timeout: float) -> None:
    """Publish every body of a batch, await the confirms together, then ack or requeue."""
    results = await asyncio.gather(*(
        publish_confirmed(exchange, persistent(m.body, message_id=m.message_id),
                          routing_key, timeout)
        for m in batch), return_exceptions=True)
    for message, result in zip(batch, results, strict=True):
        if isinstance(result, BaseException):
            await message.nack(requeue=True)
        else:
            await message.ack()


async def run(args: argparse.Namespace) -> int:
    """Consume until signalled; return the number of messages passed through."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    connection = await aio_pika.connect_robust(
        args.url, client_properties={"connection_name": "bench-passthrough"})
    handled = 0
    try:
        publish_channel = await connection.channel(publisher_confirms=True,
                                                   on_return_raises=True)
        exchange = await publish_channel.get_exchange(args.exchange, ensure=True)
        consume_channel = await connection.channel()
        await consume_channel.set_qos(prefetch_count=args.prefetch)
        queue = await consume_channel.get_queue(args.queue, ensure=True)
        buffer: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        tag = await queue.consume(buffer.put, no_ack=False)
        print("ready", flush=True)

        async def loop_batches() -> None:
            nonlocal handled
            while True:
                batch = [await buffer.get()]
                while len(batch) < args.batch_max and not buffer.empty():
                    batch.append(buffer.get_nowait())
                await _handle(batch, exchange, args.routing_key, args.timeout)
                handled += len(batch)

        task = asyncio.create_task(loop_batches())
        await stop.wait()
        await queue.cancel(tag)
        task.cancel()  # unacked deliveries go back to the queue when the channel closes
    finally:
        await connection.close()
    return handled


def main() -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="AMQP URL, vhost included")
    parser.add_argument("--queue", required=True, help="queue to consume (must exist)")
    parser.add_argument("--exchange", required=True, help="exchange to publish to (must exist)")
    parser.add_argument("--routing-key", default="")
    parser.add_argument("--prefetch", type=int, default=500)
    parser.add_argument("--batch-max", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=30.0, help="confirm timeout, seconds")
    handled = asyncio.run(run(parser.parse_args()))
    print(f"passed through {handled} messages", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
