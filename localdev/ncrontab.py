"""Six-field NCRONTAB (`sec min hour day month weekday`), as timer triggers use, for local runs."""

from __future__ import annotations

from datetime import datetime, timedelta

_RANGES = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]


def _field(text: str, lo: int, hi: int) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if body in ("*", ""):
            start, end = lo, hi
        elif "-" in body:
            a, b = body.split("-", 1)
            start, end = int(a), int(b)
        else:
            start = int(body)
            end = hi if step_text else start
        if not (lo <= start <= hi and lo <= end <= hi) or step < 1:
            raise ValueError(f"{part!r} is out of range {lo}-{hi}")
        values.update(range(start, end + 1, step))
    return values


class Schedule:
    def __init__(self, expression: str) -> None:
        parts = expression.split()
        if len(parts) != 6:
            raise ValueError(
                "an NCRONTAB expression has six fields: sec min hour day month weekday"
            )
        self.fields = [_field(p, lo, hi) for p, (lo, hi) in zip(parts, _RANGES, strict=True)]

    def matches(self, moment: datetime) -> bool:
        sec, minute, hour, day, month, weekday = self.fields
        return (
            moment.second in sec
            and moment.minute in minute
            and moment.hour in hour
            and moment.day in day
            and moment.month in month
            and (moment.isoweekday() % 7) in weekday
        )

    def next_after(self, moment: datetime) -> datetime:
        candidate = moment.replace(microsecond=0) + timedelta(seconds=1)
        for _ in range(366 * 24 * 3600):
            if self.matches(candidate):
                return candidate
            candidate += timedelta(seconds=1)
        raise ValueError("the schedule never fires within a year")
