"""Time windows of the read API: `from`/`to` as dates or RFC 3339 times, days in `tz`."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gasometer.errors import BadRequest
from gasometer.model import FAR_FUTURE, FAR_PAST


class Window(NamedTuple):
    """[start, end) in UTC, and the zone whose days the answer is cut into."""

    start: datetime
    end: datetime
    tz: str


def zone(tz: str | None) -> ZoneInfo:
    """The IANA zone named `tz` (UTC when not given); a clear error for unknown names."""
    try:
        return ZoneInfo(tz or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequest(
            f"tz: unknown time zone {tz!r} (use an IANA name like Europe/Paris)"
        ) from None


def parse_bound(value: str | None, tz: ZoneInfo, name: str, *, end: bool) -> datetime | None:
    """A date (start of that day in `tz`, or start of the next day for `to`) or a time."""
    if value is None or value == "":
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            if end:
                day += timedelta(days=1)
            return datetime.combine(day, time(), tz).astimezone(UTC)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise BadRequest(f"{name}: {value!r} needs an offset or Z")
        return moment.astimezone(UTC)
    except ValueError:
        raise BadRequest(f"{name}: {value!r} is not a date (YYYY-MM-DD) or RFC 3339 time") from None
    except OverflowError:
        raise BadRequest(f"{name}: {value!r} is out of range") from None


def window(start: str | None, end: str | None, tz: str | None) -> Window:
    """The window asked for; `to` as a date includes that whole day."""
    zone_info = zone(tz)
    lo = parse_bound(start, zone_info, "from", end=False) or FAR_PAST
    hi = parse_bound(end, zone_info, "to", end=True) or FAR_FUTURE
    if hi < lo:
        raise BadRequest("to is before from")
    return Window(lo, hi, zone_info.key)


def whole_hour_offsets(tz: str, *moments: datetime) -> bool:
    """True if `tz` is a whole number of hours from UTC at each moment (hourly rollups
    then cut its days exactly)."""
    zone_info = ZoneInfo(tz)
    for moment in moments:
        clamped = min(max(moment, FAR_PAST), FAR_FUTURE - timedelta(days=1))
        offset = clamped.astimezone(zone_info).utcoffset() or timedelta()
        if offset % timedelta(hours=1):
            return False
    return True


def local_midnight(moment: datetime, tz: str) -> datetime:
    """The start (in UTC) of the day in `tz` that `moment` falls in."""
    zone_info = ZoneInfo(tz)
    local = moment.astimezone(zone_info)
    return datetime.combine(local.date(), time(), zone_info).astimezone(UTC)


def hour_number(moment: datetime) -> int:
    """The UTC hour a moment falls in, numbered from the epoch."""
    return int(moment.timestamp() // 3600)


def exact_hours(
    win: Window, *, by_day: bool, span: tuple[datetime, datetime] | None = None
) -> list[int]:
    """The UTC hours an hourly rollup cannot answer for this window: those holding a
    window edge off the hour and, for answers cut into days of a zone whose midnight is
    off the UTC hour (Asia/Kolkata), those holding a local midnight within `span`."""
    cuts = [win.start, win.end]
    if by_day and span is not None and not whole_hour_offsets(win.tz, win.start, win.end):
        first, last = max(win.start, span[0]), min(win.end, span[1] + timedelta(hours=1))
        midnight = local_midnight(first, win.tz)
        while midnight <= last:
            cuts.append(midnight)
            midnight = local_midnight(midnight + timedelta(hours=26), win.tz)
    return sorted({hour_number(c) for c in cuts if c.minute or c.second or c.microsecond})
