"""Regular expressions for the app's continuations, which are URL-safe base64 (no padding) of
JSON text of a known form. The document's `after` patterns are made here and checked against the
app's own codec in tests/e2e/test_openapi.py, so a client generated from the document knows
which strings are continuations without building any.

Each group of three bytes becomes four characters whose values depend on neighbouring bytes, so
a group's encodings are enumerated, folded into a minimal automaton (no two states with the same
future) and written out as nested alternations of character classes.
"""

from __future__ import annotations

import base64
import itertools
import string
from collections.abc import Iterable, Sequence
from functools import cache

Byte = frozenset[int]
DIGIT: Byte = frozenset(string.digits.encode())
HEX: Byte = frozenset(string.hexdigits.lower().encode())


def fixed(text: str) -> list[Byte]:
    return [frozenset({b}) for b in text.encode()]


def guid() -> list[Byte]:
    """A lower-case GUID, as the app writes account ids: 8-4-4-4-12 hex digits."""
    classes: list[Byte] = []
    for n in (8, 4, 4, 4, 12):
        classes.extend([*fixed("-")] if classes else [])
        classes.extend([HEX] * n)
    return classes


def _encode(group: Sequence[int]) -> str:
    return base64.urlsafe_b64encode(bytes(group)).decode().rstrip("=")


def _class(chars: Iterable[str]) -> str:
    """A character class, runs of consecutive code points written as ranges."""
    points = sorted({ord(c) for c in chars})
    if len(points) == 1:
        return _literal(chr(points[0]))
    runs: list[list[int]] = []
    for p in points:
        if runs and runs[-1][1] == p - 1:
            runs[-1][1] = p
        else:
            runs.append([p, p])
    parts = []
    for lo, hi in runs:
        if hi - lo >= 2:
            parts.append(f"{_literal(chr(lo))}-{_literal(chr(hi))}")
        else:
            parts.extend(_literal(chr(p)) for p in range(lo, hi + 1))
    return "[" + "".join(parts) + "]"


def _literal(char: str) -> str:
    return "\\-" if char == "-" else char  # base64url has no other character special in a class


def group_pattern(classes: Sequence[Byte]) -> str:
    """The encodings of one group of one to three bytes, each byte from its class."""
    words = {_encode(group) for group in itertools.product(*(sorted(c) for c in classes))}
    return _minimal(frozenset(words))


@cache
def _minimal(words: frozenset[str]) -> str:
    """A pattern for a set of words of one length: a product of two sets where it is one (every
    beginning of some length has the same endings), else a branch per set of endings."""
    length = len(next(iter(words)))
    if length == 0:
        return ""
    for cut in range(1, length):
        endings: dict[str, set[str]] = {}
        for word in words:
            endings.setdefault(word[:cut], set()).add(word[cut:])
        futures = {frozenset(e) for e in endings.values()}
        if len(futures) == 1:
            return _minimal(frozenset(endings)) + _minimal(futures.pop())
    by_first: dict[str, set[str]] = {}
    for word in words:
        by_first.setdefault(word[0], set()).add(word[1:])
    by_future: dict[frozenset[str], list[str]] = {}
    for first, rest in by_first.items():
        by_future.setdefault(frozenset(rest), []).append(first)
    branches = sorted(_class(firsts) + _minimal(future) for future, firsts in by_future.items())
    return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"


def sequence_pattern(classes: Sequence[Byte]) -> str:
    """The encoding of a fixed sequence of byte classes, equal neighbouring groups folded."""
    groups = [group_pattern(classes[i : i + 3]) for i in range(0, len(classes), 3)]
    parts = []
    for pattern, run in itertools.groupby(groups):
        count = len(list(run))
        parts.append(pattern if count == 1 else f"(?:{pattern}){{{count}}}")
    return "".join(parts)


def account_after() -> str:
    """`after` of GET /api/accounts: `{"p":"<12 digits>_<account id>"}` (57 bytes, no padding)."""
    position = [*[DIGIT] * 12, *fixed("_"), *guid()]
    return "^" + sequence_pattern([*fixed('{"p":"'), *position, *fixed('"}')]) + "$"


def history_after(max_digits: int = 16) -> str:
    """`after` of GET /api/accounts/{id}/history: `{"p":"<1 to 16 digits>"}`. The prefix is
    two whole groups; what follows depends on the number of digits modulo 3."""
    prefix = sequence_pattern(fixed('{"p":"'))
    triple = group_pattern([DIGIT] * 3)
    tails = {  # digits left over after the whole triples -> (their encoding, fewest, most triples)
        0: sequence_pattern(fixed('"}')),
        1: sequence_pattern([DIGIT, *fixed('"}')]),
        2: sequence_pattern([DIGIT, DIGIT, *fixed('"}')]),
    }
    branches = []
    for left, tail in tails.items():
        fewest = 1 if left == 0 else 0
        most = (max_digits - left) // 3
        branches.append(f"(?:{triple}){{{fewest},{most}}}{tail}")
    return "^" + prefix + "(?:" + "|".join(branches) + ")$"


if __name__ == "__main__":
    print(account_after())
    print(history_after())
