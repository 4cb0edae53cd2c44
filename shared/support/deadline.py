"""The deadline of a unit of work (a request, one account's turn in the timer run), per thread.

Every wait inside the block is bounded by it: the outbound HTTP policy shrinks each timeout to
what is left, and the optimistic-write helper stops retrying when it passes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_deadline = threading.local()


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Every request this thread makes inside the block shares one deadline: each call's
    timeouts shrink to what is left, and a call past it fails at once as a timeout. A block
    inside another never extends the outer deadline."""
    previous: float | None = getattr(_deadline, "at", None)
    at = time.monotonic() + seconds
    _deadline.at = at if previous is None else min(previous, at)
    try:
        yield
    finally:
        _deadline.at = previous


def deadline_at() -> float | None:
    """This thread's deadline (a `time.monotonic()` value), or None outside any `deadline()`."""
    return getattr(_deadline, "at", None)


def time_left() -> float | None:
    """Seconds left before this thread's deadline (≤ 0 once passed), or None without one."""
    at = deadline_at()
    return None if at is None else at - time.monotonic()
