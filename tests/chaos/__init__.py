"""Chaos suite: crash, restart, poison and fuzz scenarios against real workers and RabbitMQ.

Run the long profile with ``.venv/bin/python -m tests.chaos --profile long``; the short one
runs under pytest (``tests/chaos/test_chaos.py``, marker ``chaos``).
"""
