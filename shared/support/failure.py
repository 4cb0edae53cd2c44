"""One log-safe line about an unexpected exception: its type and where it was raised.

A traceback is not logged: its frames and the exception's message can carry values (a token in a
URL, a setting, a key's bytes). The type and the innermost frame of our own code are enough to
find the bug, and hold nothing the caller sent.
"""

from __future__ import annotations

import traceback
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]  # the app root: shared/support/failure.py


def describe(exc: BaseException) -> str:
    """`TypeError at shared/core/certificates.py:88 in generate` (the deepest frame of the app)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if _is_ours(f.filename)] or frames
    if not ours:
        return type(exc).__name__
    frame = ours[-1]
    return f"{type(exc).__name__} at {_shown(frame.filename)}:{frame.lineno} in {frame.name}"


def _is_ours(filename: str) -> bool:
    path = Path(filename).resolve()
    return path.is_relative_to(_ROOT) and ".venv" not in path.parts


def _shown(filename: str) -> str:
    path = Path(filename).resolve()
    return str(path.relative_to(_ROOT)) if path.is_relative_to(_ROOT) else path.name
