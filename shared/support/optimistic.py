"""The one optimistic-write loop: read, decide, write under the version read; on a lost race,
read and decide again.

Every read-decide-write in the app goes through `retry_lost_races` under one policy (`WRITES`),
as every outbound HTTP wait goes through `shared.adapters.http.outbound`'s: a bounded number of
tries, a bounded time, and never past the deadline of the unit of work. Between tries a jittered
exponential pause, so two instances that lost to each other do not collide again in step.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from shared.support.deadline import deadline_at

T = TypeVar("T")


@dataclass(frozen=True)
class WritePolicy:
    tries: int  # at most this many attempts
    seconds: float  # and for at most this long (or until the unit's deadline, if sooner)
    first_pause: float  # the pause after the first lost race is up to this; it doubles
    longest_pause: float  # up to this at most


# A busy owner's writers lose races often (the Table store's owner row orders its events), so
# the bound is generous in tries and firm in time: a caller waits 15 s at most, then gets a 503.
WRITES = WritePolicy(tries=30, seconds=15.0, first_pause=0.004, longest_pause=0.2)


class GaveUp(Exception):
    """Every try lost its race, or the time ran out (the last race lost is its cause)."""


def retry_lost_races(
    attempt: Callable[[], T],
    lost: type[BaseException] | tuple[type[BaseException], ...],
    *,
    gave_up: Callable[[], BaseException] | None = None,
    policy: WritePolicy = WRITES,
    turn: threading.Lock | None = None,
) -> T:
    """`attempt()` until it returns; an exception of type `lost` (the write found the version it
    read gone) is a lost race, tried again after a pause. When the policy's tries or time (or the
    unit's deadline) run out, raises `gave_up()` (the caller's own "busy" error), else GaveUp, from
    the last race lost. With `turn`, each attempt holds that lock (writers of
    one process take turns, so only other instances make them lose); waiting for it counts
    against the same time."""
    give_up = time.monotonic() + policy.seconds
    at = deadline_at()
    if at is not None:
        give_up = min(give_up, at)
    last: BaseException | None = None
    for n in range(policy.tries):
        if n:
            longest = min(policy.longest_pause, policy.first_pause * 2 ** min(n, 6))
            pause = random.uniform(0, longest)  # noqa: S311 - jitter, not a secret
            time.sleep(max(min(pause, give_up - time.monotonic()), 0.0))
        if turn is not None and not turn.acquire(timeout=max(give_up - time.monotonic(), 0.001)):
            break
        try:
            return attempt()
        except lost as race:
            last = race
        finally:
            if turn is not None:
                turn.release()
        if time.monotonic() >= give_up:
            break
    raise (gave_up() if gave_up is not None else GaveUp()) from last
